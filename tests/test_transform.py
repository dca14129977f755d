"""The per-group CLR: NumPy (evaluation, baselines) and the model's layer agree."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from kmervae.kmers.layout import FeatureLayout
from kmervae.model.vae import CLRTransform
from kmervae.transform import clr, pseudocounts


def naive_clr(x: np.ndarray, layout: FeatureLayout) -> np.ndarray:
    """log(x + 0.5 / n), then minus the mean of the group, group by group in float64."""
    out = []
    start = 0
    for width in layout.widths:
        group = np.log(x[:, start : start + width].astype(np.float64) + 0.5 / width)
        out.append(group - group.mean(axis=1, keepdims=True))
        start += width
    return np.concatenate(out, axis=1)


@pytest.mark.parametrize("ks", [(6, 5, 4, 3, 2, 1), (4,), (3, 1)])
def test_numpy_and_model_clr_agree_with_the_naive_formula(ks):
    layout = FeatureLayout(ks)
    rng = np.random.default_rng(3)
    x = rng.random((64, layout.n_features)).astype(np.float32)
    x[rng.random(x.shape) < 0.3] = 0.0  # absent k-mers: the pseudocount matters
    want = naive_clr(x, layout)
    got = clr(x, layout)
    assert got.dtype == np.float32 and got.shape == x.shape
    np.testing.assert_allclose(got, want, atol=2e-6)
    layer = CLRTransform(layout)
    with torch.no_grad():
        training_path = layer(torch.from_numpy(x)).numpy()
    with torch.inference_mode():
        inference_path = layer(torch.from_numpy(x)).numpy()
    np.testing.assert_allclose(training_path, got, atol=2e-6)
    np.testing.assert_allclose(inference_path, got, atol=2e-6)
    np.testing.assert_array_equal(layer.pseudocount.numpy(), pseudocounts(layout))
