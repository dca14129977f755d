"""Plots: training curves, maps, comparisons."""
