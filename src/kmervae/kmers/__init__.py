"""Canonical k-mer tables, numba kernels and profile assembly."""
