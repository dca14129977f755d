"""Export a kmervae encoder to ONNX, so that embedding needs only ONNX Runtime.

The graph takes raw frequency profiles (``profiles``, float32, batch x F) and computes the
per-group CLR itself, then returns ``mu`` and ``logvar`` (float32, batch x latent); the
batch dimension is dynamic. ``metadata_props`` carry the model config
(:meth:`VAEConfig.to_json`), the feature layout, the kmervae version and the weights
fingerprint, which :class:`kmervae.model.onnx_runtime.OnnxEncoder` reads back.
"""

from __future__ import annotations

import contextlib
import copy
import io
import json
import logging
import tempfile
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import onnx
import torch

from kmervae._version import __version__
from kmervae.errors import KmervaeError
from kmervae.io.atomic import atomic_file, check_writable, naming_oserrors
from kmervae.kmers.layout import FeatureLayout
from kmervae.model.files import LoadedModel
from kmervae.model.onnx_runtime import (
    INPUT_NAME,
    MAX_OPSET,
    META_CONFIG,
    META_FINGERPRINT,
    META_FORMAT,
    META_INPUT,
    META_LAYOUT,
    META_SCHEMA,
    META_VERSION,
    MIN_OPSET,
    ONNX_FORMAT,
    ONNX_SCHEMA,
    OUTPUT_NAMES,
)
from kmervae.model.vae import Encoder

log = logging.getLogger(__name__)

DEFAULT_OPSET = 17
#: verify accepts ONNX Runtime vs PyTorch differences up to this, times max(1, max |output|)
VERIFY_TOLERANCE = 1e-4

Exporter = Literal["auto", "torchscript", "dynamo"]


@dataclass(frozen=True)
class OnnxExport:
    """What :func:`export_onnx` wrote: file, exporter used, opset and verified difference."""

    path: Path
    exporter: str
    opset: int
    max_abs_diff: float | None  # ONNX Runtime vs PyTorch on random profiles; None: not checked


def export_onnx(
    model: LoadedModel | Encoder,
    path: str | Path,
    *,
    overwrite: bool = False,
    opset: int = DEFAULT_OPSET,
    exporter: Exporter = "auto",
    verify: bool = True,
    fingerprint: str | None = None,
) -> OnnxExport:
    """Write the encoder of ``model`` (CLR included) as an ONNX file, atomically.

    Parameters
    ----------
    model
        A model read by :func:`kmervae.model.files.load_model`, or an encoder alone.
    path
        The ``.onnx`` file to write; it appears whole or not at all.
    overwrite
        Replace ``path`` if it exists (otherwise refuse before any work).
    opset
        ONNX opset of the graph (default 17), :data:`MIN_OPSET` to :data:`MAX_OPSET`; the
        file written is checked to carry exactly this opset.
    exporter
        ``"torchscript"`` (the legacy exporter), ``"dynamo"`` (``torch.export``) or
        ``"auto"``: TorchScript, and ``torch.export`` if that fails.
    verify
        Run the written graph with ONNX Runtime on random profiles and compare with PyTorch;
        fail if the max abs difference passes :data:`VERIFY_TOLERANCE`.
    fingerprint
        Weights fingerprint to record; default ``model.fingerprint`` (empty for an encoder).

    Returns
    -------
    OnnxExport

    Raises
    ------
    KmervaeError
        ``opset`` out of range, an export that fails or writes another opset, a graph that
        ONNX Runtime cannot run or that differs from PyTorch, a file that cannot be written
        (the message names it); nothing is left under ``path`` then.
    """
    path = Path(path)
    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise KmervaeError(f"opset {opset}: kmervae exports opsets {MIN_OPSET} to {MAX_OPSET}")
    check_writable(path, overwrite)
    if isinstance(model, LoadedModel):
        source_encoder = model.encoder
        fingerprint = model.fingerprint if fingerprint is None else fingerprint
    else:
        source_encoder = model
    encoder = copy.deepcopy(source_encoder).float().cpu().eval()
    config = encoder.config
    proto, used = _export(encoder, opset, exporter)
    props = {
        META_FORMAT: ONNX_FORMAT,
        META_SCHEMA: str(ONNX_SCHEMA),
        META_CONFIG: json.dumps(config.to_json(), sort_keys=True),
        META_LAYOUT: json.dumps(config.layout.to_json(), sort_keys=True),
        META_VERSION: __version__,
        META_FINGERPRINT: fingerprint or "",
        META_INPUT: "raw k-mer frequency profiles, float32 (batch x F); per-group CLR inside",
    }
    del proto.metadata_props[:]
    for key, value in props.items():
        entry = proto.metadata_props.add()
        entry.key, entry.value = key, value
    proto.producer_name, proto.producer_version = "kmervae", __version__
    proto.doc_string = (
        f"kmervae encoder: {config.n_features} profile columns ({_ks_text(config.layout)}) "
        f"-> mu, logvar of {config.latent}"
    )
    written = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if written != opset:
        raise KmervaeError(
            f"opset {opset} was asked for but the {used} exporter wrote opset {written}; "
            "not written (choose another opset)"
        )
    data = proto.SerializeToString()
    max_diff = None
    if verify:
        max_diff, scale = _verify(encoder, data)
        log.info("ONNX Runtime vs PyTorch on random profiles: max abs difference %.2e", max_diff)
        if not max_diff <= VERIFY_TOLERANCE * max(1.0, scale):
            raise KmervaeError(
                f"the exported graph differs from the PyTorch encoder by {max_diff:.2e} "
                f"(outputs up to {scale:.3g}); not written"
            )
    with naming_oserrors(path), atomic_file(path, overwrite) as tmp:
        tmp.write_bytes(data)
    log.info("wrote %s (%s exporter, opset %d, %.1f MB)", path, used, opset, len(data) / 1e6)
    return OnnxExport(path, used, opset, max_diff)


def _ks_text(layout: FeatureLayout) -> str:
    return ", ".join(f"{k}-mers" for k in layout.ks)


def _export(encoder: Encoder, opset: int, exporter: Exporter) -> tuple[onnx.ModelProto, str]:
    if exporter in ("auto", "torchscript"):
        try:
            return _export_torchscript(encoder, opset), "torchscript"
        except Exception as exc:  # the legacy exporter is deprecated; it may be gone or fail
            if exporter == "torchscript":
                raise KmervaeError(f"TorchScript ONNX export failed: {_first_line(exc)}") from None
            log.debug("TorchScript ONNX export failed (%s); trying torch.export", exc)
    try:
        return _export_dynamo(encoder, opset), "dynamo"
    except KmervaeError:
        raise
    except Exception as exc:  # torch.export raises many types; the user needs one line
        raise KmervaeError(f"ONNX export (opset {opset}) failed: {_first_line(exc)}") from None


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else type(exc).__name__


def _example(encoder: Encoder, n: int = 2) -> torch.Tensor:
    return torch.from_numpy(random_profiles(n, encoder.config.layout, seed=0))


def _export_torchscript(encoder: Encoder, opset: int) -> onnx.ModelProto:
    with tempfile.TemporaryDirectory(prefix="kmervae-onnx-") as folder, warnings.catch_warnings():
        target = Path(folder) / "encoder.onnx"
        warnings.simplefilter("ignore")  # the legacy exporter warns that it is deprecated
        torch.onnx.export(
            encoder,
            (_example(encoder),),
            target,
            dynamo=False,
            opset_version=opset,
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_axes={name: {0: "batch"} for name in (INPUT_NAME, *OUTPUT_NAMES)},
            do_constant_folding=True,
        )
        return onnx.load_model(str(target))


def _export_dynamo(encoder: Encoder, opset: int) -> onnx.ModelProto:
    batch = torch.export.Dim("batch", min=1)
    with warnings.catch_warnings(), contextlib.redirect_stdout(io.StringIO()):
        warnings.simplefilter("ignore")
        program = torch.onnx.export(
            encoder,
            (_example(encoder),),
            None,
            dynamo=True,
            opset_version=max(opset, 18),  # the torch.export exporter starts at opset 18
            input_names=[INPUT_NAME],
            output_names=list(OUTPUT_NAMES),
            dynamic_shapes=({0: batch},),
            verbose=False,
        )
    if program is None:
        raise KmervaeError("torch.export ONNX export returned no program")
    return program.model_proto


def random_profiles(n: int, layout: FeatureLayout, seed: int = 0) -> np.ndarray:
    """Random frequency profiles: float32 (n x F), each k-group summing to 1.

    Exponential draws (a flat Dirichlet) with a few zeros, like sparse 6-mer groups.
    """
    rng = np.random.default_rng(seed)
    x = rng.exponential(size=(n, layout.n_features)).astype(np.float32)
    x[rng.random(x.shape) < 0.05] = 0.0
    for k in layout.ks:
        cols = layout.group_slice(k)
        total = x[:, cols].sum(axis=1, keepdims=True)
        x[:, cols] /= np.where(total > 0, total, 1.0)
    return x


def _verify(encoder: Encoder, data: bytes, sizes: tuple[int, ...] = (1, 37)) -> tuple[float, float]:
    """(max abs difference ONNX Runtime vs PyTorch, max abs output) over mu and logvar."""
    import onnxruntime as ort

    layout = encoder.config.layout
    options = ort.SessionOptions()
    options.log_severity_level = 3
    worst = scale = 0.0
    try:
        session = ort.InferenceSession(data, options, providers=["CPUExecutionProvider"])
        runs = [
            session.run(list(OUTPUT_NAMES), {INPUT_NAME: random_profiles(n, layout, seed=1 + i)})
            for i, n in enumerate(sizes)
        ]
    except Exception as exc:  # ORT's own exception types (InvalidGraph, NotImplemented, ...)
        raise KmervaeError(
            f"ONNX Runtime cannot run the exported graph ({_first_line(exc)}); not written"
        ) from None
    for i, (n, got) in enumerate(zip(sizes, runs, strict=True)):
        x = random_profiles(n, layout, seed=1 + i)
        with torch.no_grad():
            want = encoder(torch.from_numpy(x))
        for a, b in zip(got, want, strict=True):
            worst = max(worst, float(np.max(np.abs(a - b.numpy()))))
            scale = max(scale, float(np.max(np.abs(b.numpy()))))
    return worst, scale
