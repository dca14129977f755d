"""Embedding-quality protocols and baselines."""
