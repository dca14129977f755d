"""The genome benchmark's summary over seeds: mean ± standard error per cell, and paired
differences from PCA-32 in the same run, against a plain statistics twin."""

from __future__ import annotations

import argparse
import math
import statistics

import pytest


def _se(values):
    return statistics.stdev(values) / math.sqrt(len(values))


def test_mean_and_standard_error_match_the_statistics_module(bench):
    values = [0.91, 0.93, 0.96]
    mean, se = bench.mean_se(values)
    assert mean == pytest.approx(statistics.mean(values))
    assert se == pytest.approx(_se(values))
    assert bench.mean_se([0.5]) == (0.5, 0.0)
    assert bench._cell(values, "{:.3f}") == "0.933 ± 0.015 (0.910–0.960)"
    assert bench._cell([0.5], "{:.3f}") == "0.500"
    assert bench._cell([0.5, float("nan"), 0.7], "{:.1f}") == "0.6 ± 0.1 (0.5–0.7) [2 of 3 runs]"
    assert bench._cell([float("nan")], "{:.1f}") == "nan"


def _run(bench, seed, model, pca):
    """One run's rows: every figure of the VAE is ``model``, every one of PCA-32 ``pca``."""
    keys = [key for key, _ in bench.COLUMNS] + ["fidelity Spearman"]
    rows = [
        {"representation": label, "dim": 32, "pool": 100, **dict.fromkeys(keys, value)}
        for label, value in (("VAE", model), ("PCA-32 of CLR", pca))
    ]
    return {"seed": seed, "rows": rows}


def test_paired_differences_and_the_two_se_mark(bench):
    # the model leads PCA-32 by 0.02, 0.03, 0.025 in the same runs: mean 0.025, SE small
    runs = [_run(bench, 42, 0.92, 0.90), _run(bench, 43, 0.83, 0.80), _run(bench, 44, 0.965, 0.94)]
    table = bench.paired_table(runs)
    diffs = [0.02, 0.03, 0.025]
    expected = f"{statistics.mean(diffs):+.3f} ± {_se(diffs):.3f}*"
    row = next(line for line in table.splitlines() if line.startswith("| VAE"))
    assert row.count(expected) == len(bench.COLUMNS) + 1
    assert "PCA-32 of CLR |" not in table.split("\n", 2)[2]  # not compared with itself
    # differences that straddle 0 are not marked
    runs = [_run(bench, 42, 0.92, 0.90), _run(bench, 43, 0.80, 0.83), _run(bench, 44, 0.94, 0.94)]
    row = next(line for line in bench.paired_table(runs).splitlines() if "VAE" in line)
    assert "*" not in row
    # without PCA-32 among the representations there is no paired table
    for run in runs:
        run["rows"] = run["rows"][:1]
    assert bench.paired_table(runs) == ""


def test_summary_tables_hold_the_paired_table(bench):
    runs = [_run(bench, 42, 0.92, 0.90), _run(bench, 43, 0.83, 0.80), _run(bench, 44, 0.965, 0.94)]
    text = bench.summary_tables(runs, argparse.Namespace(skip_clusters=True))
    assert "Minus PCA-32 of CLR in the same run" in text
    assert "0.905 ± 0.040 (0.830–0.965)" in text  # the VAE's cells, mean ± SE (min–max)
