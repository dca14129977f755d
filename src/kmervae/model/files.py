"""Published model files: a folder with ``config.json``, ``model.safetensors``, a model card.

``config.json`` holds the architecture (:class:`VAEConfig`), which parts are present
(``encoder``, ``decoder``), the feature layout and the kmervae version.
``model.safetensors`` holds the weights and BatchNorm statistics (keys ``encoder.*`` and
``decoder.*``). ``README.md`` is the model card (training data, metrics, provenance), with
the same facts in machine-readable form in ``card.json``.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from kmervae._version import __version__
from kmervae.errors import InputError, KmervaeError
from kmervae.io.atomic import (
    check_writable,
    give_default_mode,
    remove_path,
    replace_path,
    temporary_name,
)
from kmervae.model.config import MODEL_FORMAT, MODEL_SCHEMA, VAEConfig, read_model_folder
from kmervae.model.vae import VAE, Decoder, Encoder
from kmervae.provenance import file_sha256


@dataclass
class LoadedModel:
    """A model read from disk: config, encoder (eval mode), decoder if present, card."""

    config: VAEConfig
    encoder: Encoder
    decoder: Decoder | None
    card: dict[str, Any] = field(default_factory=dict)
    source: Path | None = None
    fingerprint: str = ""  # SHA-256 of the weights file: identifies the embedding space


def save_model(
    model: VAE | Encoder,
    directory: str | Path,
    *,
    card: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> Path:
    """Write ``model`` (a full VAE or an encoder alone) as a model folder, atomically."""
    directory = Path(directory)
    check_writable(directory, overwrite)
    tmp = temporary_name(directory)
    remove_path(tmp)
    tmp.mkdir()
    try:
        if isinstance(model, VAE):
            parts = ["encoder", "decoder"]
            state = model.state_dict()
        else:
            parts = ["encoder"]
            state = {f"encoder.{k}": v for k, v in model.state_dict().items()}
        tensors = {k: v.detach().cpu().contiguous() for k, v in state.items()}
        try:
            save_file(tensors, str(tmp / "model.safetensors"), metadata={"format": "pt"})
        except SafetensorError as exc:  # its I/O errors (a full disk) are not OSErrors
            raise KmervaeError(f"{directory}: cannot write the weights ({exc})") from None
        give_default_mode(tmp / "model.safetensors")  # safetensors writes it 0600
        config = {
            "format": MODEL_FORMAT,
            "schema_version": MODEL_SCHEMA,
            "kmervae_version": __version__,
            "parts": parts,
            "model": model.config.to_json(),
            "layout": model.config.layout.to_json(),
        }
        (tmp / "config.json").write_text(json.dumps(config, indent=2) + "\n")
        card = dict(card or {})
        training_data = card.get("training_data")
        if isinstance(training_data, dict) and training_data.get("path"):
            # absolute, so evaluate finds the training data (and its ids) from anywhere
            card["training_data"] = {
                **training_data,
                "path": str(Path(training_data["path"]).absolute()),
            }
        card.setdefault("kmervae_version", __version__)
        card["weights_sha256"] = file_sha256(tmp / "model.safetensors")
        (tmp / "card.json").write_text(json.dumps(card, indent=2) + "\n")
        (tmp / "README.md").write_text(model_card_markdown(model.config, parts, card))
    except OSError as exc:
        remove_path(tmp)
        if exc.filename is not None:
            raise
        # ENOSPC and friends on write() name no file
        raise KmervaeError(f"{directory}: cannot write the model ({exc.strerror or exc})") from None
    except BaseException:
        remove_path(tmp)
        raise
    replace_path(tmp, directory)
    return directory


def model_card_markdown(config: VAEConfig, parts: list[str], card: dict[str, Any]) -> str:
    """The human-readable model card."""
    lines = [f"# kmervae model{': ' + card['name'] if card.get('name') else ''}", ""]
    lines += [
        "## Architecture",
        "",
        f"- k-groups: {', '.join(map(str, config.ks))} ({config.n_features} features, "
        "per-group CLR with a 0.5/n pseudocount inside the model)",
        f"- encoder: {config.n_features} -> {' -> '.join(map(str, config.hidden))} -> "
        f"(mu, log var) of {config.latent}; BatchNorm: {config.batchnorm}; "
        f"LeakyReLU({config.leaky_slope}); dropout {config.dropout}",
        f"- beta {config.beta}; log var clipped to [{config.logvar_min}, {config.logvar_max}]",
        f"- parts in this folder: {', '.join(parts)}",
        "- the embedding of a contig is mu",
        "",
    ]
    for title, key in (
        ("Training data", "training_data"),
        ("Metrics", "metrics"),
        ("Training", "training"),
        ("Provenance", "provenance"),
    ):
        value = card.get(key)
        if not value:
            continue
        lines += [f"## {title}", ""]
        if isinstance(value, dict):
            lines += [
                f"- {k}: {json.dumps(v) if isinstance(v, dict | list) else v}"
                for k, v in value.items()
            ]
        else:
            lines.append(str(value))
        lines.append("")
    lines += [
        f"kmervae {card.get('kmervae_version', __version__)}; weights SHA-256 "
        f"{card.get('weights_sha256', '?')}",
        "",
    ]
    return "\n".join(lines)


def load_model(path: str | Path) -> LoadedModel:
    """Read a model folder (or a training checkpoint ``.pt``); the modules are in eval mode."""
    path = Path(path)
    if path.is_file() and path.suffix == ".pt":
        from kmervae.model.checkpoint import load_checkpoint_model

        return load_checkpoint_model(path)
    meta = read_model_folder(path)
    if meta["kind"] != "vae":
        raise InputError(
            f"{path}: a {meta['kind'].upper()} model, not a VAE: it embeds and is evaluated, "
            "but has no network (no encoder weights, no decoder)"
        )
    try:
        config = VAEConfig.from_json(meta["model"])
    except (KeyError, TypeError, ValueError, KmervaeError) as exc:
        raise InputError(f"{path}/config.json: no usable model config ({exc})") from None
    weights = path / "model.safetensors"
    try:
        state = load_file(str(weights))
    except (FileNotFoundError, SafetensorError, OSError) as exc:
        raise InputError(f"{weights}: cannot read the weights ({exc})") from None
    encoder = Encoder(config)
    _load_part(encoder, state, "encoder", weights)
    decoder = None
    if "decoder" in meta.get("parts", []):
        decoder = Decoder(config)
        _load_part(decoder, state, "decoder", weights)
    card: dict[str, Any] = {}
    if (path / "card.json").is_file():
        try:
            card = json.loads((path / "card.json").read_text())
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{path}/card.json: not valid JSON ({exc})") from None
        if not isinstance(card, dict):
            raise InputError(f"{path}/card.json: not a model card (a JSON object)")
    return LoadedModel(
        config,
        encoder.eval(),
        decoder.eval() if decoder else None,
        card,
        path,
        file_sha256(weights),
    )


def _load_part(
    module: torch.nn.Module, state: dict[str, torch.Tensor], prefix: str, source: Path
) -> None:
    part = {k[len(prefix) + 1 :]: v for k, v in state.items() if k.startswith(prefix + ".")}
    try:
        module.load_state_dict(part, strict=True)
    except RuntimeError as exc:
        first = str(exc).splitlines()[0]
        raise InputError(f"{source}: {prefix} weights do not fit the config ({first})") from None
