"""Small random models and profile datasets for the embedding tests."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from kmervae.io.dataset import DatasetWriter
from kmervae.kmers.layout import FeatureLayout
from kmervae.model.config import VAEConfig
from kmervae.model.files import save_model
from kmervae.model.vae import Encoder

SMALL = VAEConfig(ks=(4, 3, 2, 1), hidden=(32, 16), latent=8)


def random_profiles(n: int, layout: FeatureLayout, seed: int = 0) -> np.ndarray:
    """float32 (n x F): each k-group a random frequency vector (Dirichlet), like profiles."""
    rng = np.random.default_rng(seed)
    groups = [rng.dirichlet(np.full(w, 0.5), size=n) for w in layout.widths]
    return np.concatenate(groups, axis=1).astype(np.float32)


def small_encoder(config: VAEConfig = SMALL, seed: int = 0) -> Encoder:
    """A random encoder in eval mode whose BatchNorm has non-trivial statistics."""
    torch.manual_seed(seed)
    encoder = Encoder(config)
    with torch.no_grad():
        for module in encoder.modules():
            if isinstance(module, nn.BatchNorm1d):
                n = module.num_features
                module.weight.copy_(1 + 0.3 * torch.randn(n))
                module.bias.copy_(0.3 * torch.randn(n))
                module.running_mean.copy_(0.5 * torch.randn(n))
                module.running_var.copy_(0.5 + torch.rand(n))
    return encoder.eval()


def write_model(path: Path, config: VAEConfig = SMALL, seed: int = 0) -> tuple[Path, Encoder]:
    encoder = small_encoder(config, seed)
    return save_model(encoder, path), encoder


def direct_encode(encoder: Encoder, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(mu, logvar) of the module itself, float32 (n x latent) each."""
    with torch.no_grad():
        mu, logvar = encoder(torch.from_numpy(np.asarray(x, np.float32)))
    return mu.numpy(), logvar.numpy()


def write_profiles(
    path: Path,
    x: np.ndarray,
    *,
    layout: FeatureLayout = SMALL.layout,
    dtype: str = "float32",
    fmt: str = "native",
    ids: list[str] | None = None,
) -> Path:
    """A dataset of rows ``x`` with ids c0, c1, …, lengths 1000 + 7 i, gc i / 1000 and two
    sources (even rows 0, odd rows 1). Returns the dataset path (folder or NAME.npy)."""
    n = x.shape[0]
    ids = ids if ids is not None else [f"c{i}" for i in range(n)]
    with DatasetWriter(path, layout, dtype=dtype, fmt=fmt) as writer:
        writer.add_source({"name": "a"})
        writer.add_source({"name": "b"})
        writer.append(
            x,
            1000 + 7 * np.arange(n, dtype=np.int64),
            ids,
            gc=np.arange(n, dtype=np.float32) / 1000,
            sources=np.arange(n, dtype=np.int32) % 2,
        )
        return writer.close()


def npy_bytes(x: np.ndarray) -> bytes:
    import io

    buffer = io.BytesIO()
    np.save(buffer, x)
    return buffer.getvalue()
