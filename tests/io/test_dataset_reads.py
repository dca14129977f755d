"""Plain-read row access agrees with the memory map, for every dataset flavour."""

from __future__ import annotations

import numpy as np
import pytest
from profile_factory import write_dataset

from kmervae.io.dataset import open_dataset
from kmervae.kmers.layout import FEATURE_LAYOUT


@pytest.mark.parametrize(
    ("fmt", "dtype"), [("native", "float32"), ("native", "float16"), ("legacy", "float32")]
)
def test_read_feature_rows_matches_memmap(tmp_path, fmt, dtype):
    expected = write_dataset(tmp_path / "d", 400, fmt=fmt, dtype=dtype, layout=FEATURE_LAYOUT)
    ds = open_dataset(expected.path)
    rng = np.random.default_rng(1)
    for rows in (
        np.arange(400),
        np.sort(rng.choice(400, 37, replace=False)),
        np.array([399]),
        np.array([0, 1, 2, 50, 51, 300]),
        np.array([], np.int64),
    ):
        got = ds.read_feature_rows(rows, max_gap=4)
        assert got.dtype == ds.dtype and got.shape == (len(rows), FEATURE_LAYOUT.n_features)
        np.testing.assert_array_equal(got, np.asarray(ds.features)[rows])
