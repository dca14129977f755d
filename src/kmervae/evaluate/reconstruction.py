"""Reconstruction: mean squared error of the decoded mu against the CLR input, per k-group."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from kmervae.errors import InputError
from kmervae.evaluate.representations import BLOCK_ROWS, dataset_columns
from kmervae.io.dataset import ProfileDataset
from kmervae.model.data import read_rows
from kmervae.model.files import LoadedModel


def reconstruction_mse(
    model: LoadedModel,
    dataset: ProfileDataset,
    rows: np.ndarray,
    *,
    block_rows: int = BLOCK_ROWS,
) -> dict[str, Any]:
    """MSE of ``decoder(mu)`` against the CLR profile, per k-group and over all features.

    Parameters
    ----------
    model : a loaded model with its decoder.
    rows : int64 (n,), sorted held-out rows of ``dataset``.

    Returns
    -------
    dict with ``mse`` (mean over rows and features), ``mse_x_features`` (the training
    loss's reconstruction term), ``mse_per_k`` ({"6": …, …}) and ``rows``.

    Raises
    ------
    InputError
        The model has no decoder (an encoder-only model), there are no rows, or the
        dataset lacks the model's k-groups.
    """
    if model.decoder is None:
        raise InputError(
            f"{model.source}: an encoder-only model has no decoder, so reconstruction cannot "
            "be measured; give the full model folder (RUN_DIR/model) or a training checkpoint"
        )
    if len(rows) == 0:
        raise InputError(f"{dataset.path}: no held-out rows to measure reconstruction on")
    config = model.config
    layout = config.layout
    columns = dataset_columns(dataset, config.ks, f"model {model.source}")
    per_column = np.zeros(layout.n_features, np.float64)
    with torch.inference_mode():
        for start in range(0, len(rows), block_rows):
            x = torch.from_numpy(read_rows(dataset, columns, rows[start : start + block_rows]))
            target = model.encoder.clr(x)
            mu, _ = model.encoder.forward_clr(target)
            recon = model.decoder(mu)
            per_column += ((recon - target) ** 2).sum(dim=0).double().numpy()
    per_column /= len(rows)
    return {
        "rows": len(rows),
        "mse": float(per_column.mean()),
        "mse_x_features": float(per_column.sum()),
        "mse_per_k": {str(k): float(per_column[layout.group_slice(k)].mean()) for k in layout.ks},
    }
