"""Training checkpoints: config, weights, optimizer, schedule, epoch and RNG state.

A checkpoint is one ``torch.save`` file written under a temporary name and renamed, so a
run killed at any moment leaves the previous checkpoint intact. It is read back with
``weights_only=True``: only tensors and plain Python values, never arbitrary objects.

Epochs are counted from 1 (``epoch``: the last epoch done, ``best_epoch``). Checkpoints of
schema 1 counted them from 0; :func:`load_checkpoint` reads them as if they had not.
"""

from __future__ import annotations

import io
import os
import pickle
import random
import zipfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch

from kmervae._version import __version__
from kmervae.errors import InputError, KmervaeError
from kmervae.io.atomic import atomic_file, naming_oserrors
from kmervae.io.dataset import read_dataset_record
from kmervae.model.config import TrainConfig, VAEConfig

if TYPE_CHECKING:
    from kmervae.model.files import LoadedModel

CHECKPOINT_FORMAT = "kmervae-checkpoint"
#: 2: epochs counted from 1 (schema 1 counted them from 0)
CHECKPOINT_SCHEMA = 2
# may differ between a run and its resume; every other field must match
RESUMABLE_CHANGES = ("epochs", "early_stopping")


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
    """Write ``payload`` (plus format tags and RNG state) atomically to ``path``.

    The checkpoint is serialised in memory and written with plain file writes, so a full
    disk is an ordinary "No space left on device" naming ``path`` (``torch.save`` straight to
    a file reports it as an opaque RuntimeError); the temporary is removed on any failure.
    """
    data = {
        "format": CHECKPOINT_FORMAT,
        "schema_version": CHECKPOINT_SCHEMA,
        "kmervae_version": __version__,
        "rng": rng_state(),
        **payload,
    }
    buffer = io.BytesIO()
    torch.save(data, buffer)
    with naming_oserrors(path), atomic_file(path, overwrite=True) as tmp, open(tmp, "wb") as fh:
        fh.write(buffer.getbuffer())
        fh.flush()
        os.fsync(fh.fileno())


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
    if data.get("schema_version", 0) < 2:
        _count_epochs_from_one(data)
    return data


def _count_epochs_from_one(data: dict[str, Any]) -> None:
    """Shift the 0-based epochs of a schema-1 checkpoint to the 1-based ones of schema 2."""
    data["epoch"] = int(data["epoch"]) + 1
    if data.get("best_epoch") is not None:
        data["best_epoch"] = int(data["best_epoch"]) + 1
    metrics = data.get("metrics")
    if isinstance(metrics, dict) and isinstance(metrics.get("epoch"), int):
        metrics["epoch"] += 1
    data["schema_version"] = CHECKPOINT_SCHEMA


def check_resume_config(
    ckpt: dict[str, Any], model_config: VAEConfig, train_config: TrainConfig, path: Path
) -> None:
    """Refuse to resume checkpoint ``path`` with another model config, or with a training
    config that differs in more than :data:`RESUMABLE_CHANGES`."""
    stored_model = VAEConfig.from_json(ckpt["model_config"])
    if stored_model != model_config:
        diff = [
            f"{k}: {v} -> {model_config.to_json()[k]}"
            for k, v in stored_model.to_json().items()
            if model_config.to_json()[k] != v
        ]
        raise KmervaeError(f"{path}: resuming with a different model config ({'; '.join(diff)})")
    stored_train = ckpt.get("train_config", {})
    diff = [
        f"{k}: {v} -> {train_config.to_json().get(k)}"
        for k, v in stored_train.items()
        if k not in RESUMABLE_CHANGES and train_config.to_json().get(k) != v
    ]
    if diff:
        raise KmervaeError(
            f"{path}: resuming with a different training config "
            f"({'; '.join(diff)}); only {', '.join(RESUMABLE_CHANGES)} may change"
        )


def check_resume_data(stored: dict[str, Any], now: dict[str, Any], run_dir: Path) -> None:
    """Refuse to resume on data other than the run's: other rows, ids or file contents.

    ``stored`` and ``now`` are the run's dataset records (:func:`kmervae.io.dataset.
    dataset_record`, with a ``validation`` record for a separate validation dataset); a
    record of an earlier kmervae is read with :func:`kmervae.io.dataset.read_dataset_record`.
    """
    if not stored:  # a checkpoint that recorded nothing about its data
        return
    stored = read_dataset_record(stored)
    for role, old, new in (
        ("dataset", stored, now),
        ("validation dataset", stored.get("validation"), now.get("validation")),
    ):
        if old is None and new is None:
            continue
        if old is None or new is None:
            raise KmervaeError(
                f"{run_dir}: the run started "
                + (
                    f"with the validation dataset {old['path']}"
                    if old
                    else "without a validation dataset"
                )
                + "; resume it the same way"
            )
        changes = []
        if old.get("n_rows") != new["n_rows"]:
            changes.append(f"{old.get('n_rows')} rows when the run started, {new['n_rows']} now")
        elif old.get("ids_sha256") and old["ids_sha256"] != new["ids_sha256"]:
            changes.append("its ids changed")
        for key, what in (
            ("features_sha256", "features"),
            ("features_sampled_sha256", "features (sampled SHA-256)"),
        ):
            if old.get(key) and new.get(key) and old[key] != new[key]:
                changes.append(f"its {what} changed")
        if changes:
            raise KmervaeError(
                f"{new['path']}: not the {role} the run in {run_dir} started with "
                f"({'; '.join(changes)}); resume only on the same data"
            )


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
