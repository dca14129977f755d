"""Training checkpoints: config, weights, optimizer, schedule, epoch and RNG state.

A checkpoint is one ``torch.save`` file written under a temporary name and renamed, so a
run killed at any moment leaves the previous checkpoint intact. It is read back with
``weights_only=True``: only tensors and plain Python values, never arbitrary objects.
"""

from __future__ import annotations

import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from kmervae._version import __version__
from kmervae.errors import InputError
from kmervae.io.atomic import temporary_name
from kmervae.model.config import VAEConfig

if TYPE_CHECKING:
    from kmervae.model.files import LoadedModel

CHECKPOINT_FORMAT = "kmervae-checkpoint"
CHECKPOINT_SCHEMA = 1


def rng_state() -> dict[str, Any]:
    # numpy draws in kmervae come from seeded Generators made per use, not the global state
    state: dict[str, Any] = {"torch": torch.get_rng_state(), "python": random.getstate()}
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def restore_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def save_checkpoint(path: Path, payload: dict[str, Any]) -> None:
    """Write ``payload`` (plus format tags and RNG state) atomically to ``path``."""
    data = {
        "format": CHECKPOINT_FORMAT,
        "schema_version": CHECKPOINT_SCHEMA,
        "kmervae_version": __version__,
        "rng": rng_state(),
        **payload,
    }
    tmp = temporary_name(path)
    torch.save(data, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: str | Path) -> dict[str, Any]:
    """Read a checkpoint; a corrupt or foreign file is one clear InputError."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such checkpoint")
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (
        pickle.UnpicklingError,
        zipfile.BadZipFile,
        RuntimeError,
        EOFError,
        OSError,
        ValueError,
        AttributeError,
    ) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise InputError(f"{path}: not a readable kmervae checkpoint ({first[:200]})") from None
    if not isinstance(data, dict) or data.get("format") != CHECKPOINT_FORMAT:
        raise InputError(f"{path}: not a kmervae checkpoint (foreign file)")
    if data.get("schema_version", 0) > CHECKPOINT_SCHEMA:
        raise InputError(f"{path}: checkpoint schema is newer than this kmervae reads")
    for key in ("model_config", "model_state", "epoch"):
        if key not in data:
            raise InputError(f"{path}: checkpoint lacks {key!r}")
    return data


def load_checkpoint_model(path: str | Path) -> LoadedModel:
    """A :class:`~kmervae.model.files.LoadedModel` from a training checkpoint."""
    from kmervae.model.files import LoadedModel
    from kmervae.model.vae import VAE
    from kmervae.provenance import file_sha256

    data = load_checkpoint(path)
    config = VAEConfig.from_json(data["model_config"])
    model = VAE(config)
    try:
        model.load_state_dict(data["model_state"])
    except RuntimeError as exc:
        raise InputError(
            f"{path}: weights do not fit the stored config ({str(exc).splitlines()[0]})"
        ) from None
    model.eval()
    return LoadedModel(
        config, model.encoder, model.decoder, data.get("card", {}), Path(path), file_sha256(path)
    )
