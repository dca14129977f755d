"""Run an exported kmervae encoder with ONNX Runtime, without PyTorch.

This module imports neither torch nor the rest of the model package: a laptop that embeds
contigs needs only numpy and onnxruntime. The file format is written by
:mod:`kmervae.model.onnx_export`: one input ``profiles`` (float32, batch x F, raw k-mer
frequencies; the per-group CLR is inside the graph), two outputs ``mu`` and ``logvar``
(float32, batch x latent), a dynamic batch dimension, and ``metadata_props`` naming the
model config, feature layout, kmervae version and weights fingerprint.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np

from kmervae.errors import InputError, KmervaeError
from kmervae.kmers.layout import FeatureLayout
from kmervae.model.config import VAEConfig

ONNX_FORMAT = "kmervae-onnx-encoder"
ONNX_SCHEMA = 1
INPUT_NAME = "profiles"
OUTPUT_NAMES = ("mu", "logvar")
#: the opsets ``kmervae export`` writes: 7 (older opsets lack the operators the graph needs)
#: to 23, the newest that torch's TorchScript ONNX exporter writes
MIN_OPSET, MAX_OPSET = 7, 23

#: metadata_props keys of an exported encoder
META_FORMAT = "kmervae.format"
META_SCHEMA = "kmervae.schema_version"
META_CONFIG = "kmervae.model_config"
META_LAYOUT = "kmervae.layout"
META_VERSION = "kmervae.version"
META_FINGERPRINT = "kmervae.fingerprint"
META_INPUT = "kmervae.input"


class OnnxEncoder:
    """A kmervae encoder exported to ONNX, run with ONNX Runtime on the CPU.

    Parameters
    ----------
    path
        An ``.onnx`` file written by ``kmervae export MODEL -o OUT.onnx``.
    intra_op_num_threads
        Threads ONNX Runtime uses within an operator; 0 (default) lets it choose
        (one per physical core).
    providers
        ONNX Runtime execution providers, default ``["CPUExecutionProvider"]``.

    Attributes
    ----------
    config : VAEConfig
        The architecture the encoder was exported from.
    fingerprint : str
        SHA-256 of the weights file of the source model: identifies the embedding space.
    kmervae_version : str
        The kmervae version that wrote the file.
    metadata : dict[str, str]
        All ``metadata_props`` of the file.

    Raises
    ------
    InputError
        The file cannot be read by ONNX Runtime or is not a kmervae encoder.
    """

    def __init__(
        self,
        path: str | Path,
        *,
        intra_op_num_threads: int = 0,
        providers: list[str] | None = None,
    ):
        import onnxruntime as ort

        self.path = Path(path)
        if not self.path.is_file():
            raise InputError(f"{self.path}: no such ONNX file")
        if intra_op_num_threads < 0:
            raise InputError(f"intra_op_num_threads must be >= 0, got {intra_op_num_threads}")
        options = ort.SessionOptions()
        options.intra_op_num_threads = int(intra_op_num_threads)
        options.log_severity_level = 3  # errors only; ORT's warnings are not the user's business
        try:
            self._session = ort.InferenceSession(
                str(self.path), options, providers=providers or ["CPUExecutionProvider"]
            )
        except Exception as exc:  # ORT raises its own exception types (InvalidProtobuf, Fail…)
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise InputError(f"{self.path}: not a readable ONNX model ({first})") from None
        self.metadata: dict[str, str] = dict(self._session.get_modelmeta().custom_metadata_map)
        if self.metadata.get(META_FORMAT) != ONNX_FORMAT:
            raise InputError(
                f"{self.path}: not a kmervae ONNX encoder (no {META_FORMAT}={ONNX_FORMAT} "
                "metadata; write one with 'kmervae export MODEL -o OUT.onnx')"
            )
        try:
            schema = int(self.metadata.get(META_SCHEMA, "0"))
        except ValueError:
            schema = -1
        if not 1 <= schema <= ONNX_SCHEMA:
            raise InputError(
                f"{self.path}: kmervae ONNX schema {self.metadata.get(META_SCHEMA)!r} is not "
                f"one this kmervae reads (1..{ONNX_SCHEMA}); upgrade kmervae"
            )
        try:
            self.config = VAEConfig.from_json(json.loads(self.metadata[META_CONFIG]))
            if META_LAYOUT in self.metadata:
                layout = FeatureLayout.from_json(json.loads(self.metadata[META_LAYOUT]))
                if layout != self.config.layout:
                    raise ValueError("the layout does not match the model config")
        except (KeyError, ValueError, TypeError, KmervaeError) as exc:
            raise InputError(f"{self.path}: broken kmervae metadata ({exc})") from None
        self.fingerprint: str = self.metadata.get(META_FINGERPRINT, "")
        self.kmervae_version: str = self.metadata.get(META_VERSION, "")
        inputs = {i.name: i for i in self._session.get_inputs()}
        outputs = {o.name for o in self._session.get_outputs()}
        if INPUT_NAME not in inputs or not set(OUTPUT_NAMES) <= outputs:
            raise InputError(
                f"{self.path}: expected input {INPUT_NAME!r} and outputs {OUTPUT_NAMES}, "
                f"found {sorted(inputs)} -> {sorted(outputs)}"
            )
        width = inputs[INPUT_NAME].shape[-1]
        if isinstance(width, int) and width != self.config.n_features:
            raise InputError(
                f"{self.path}: the graph takes {width} features but its config says "
                f"{self.config.n_features}"
            )

    @property
    def n_features(self) -> int:
        """Columns of an input row (2772 for the reference 6…1-mer layout)."""
        return self.config.n_features

    @property
    def latent(self) -> int:
        """Columns of ``mu`` and ``logvar``."""
        return self.config.latent

    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Embed raw frequency profiles.

        Parameters
        ----------
        x
            float32 (n x F) k-mer frequency profiles in the model's layout (each k-group
            sums to 1, or is all zeros); other float dtypes are converted to float32.

        Returns
        -------
        mu, logvar
            float32 (n x latent) each; ``mu`` is the embedding.

        Raises
        ------
        InputError
            ``x`` is not a 2-D array of ``n_features`` columns.
        """
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.n_features:
            raise InputError(
                f"profiles of shape {x.shape} do not fit the encoder {self.path.name}, which "
                f"takes n x {self.n_features} features ({self._ks_text()})"
            )
        if x.shape[0] == 0:
            empty = np.zeros((0, self.latent), np.float32)
            return empty, empty.copy()
        x = np.ascontiguousarray(x, dtype=np.float32)
        mu, logvar = self._session.run(list(OUTPUT_NAMES), {INPUT_NAME: x})
        return np.asarray(mu, np.float32), np.asarray(logvar, np.float32)

    def _ks_text(self) -> str:
        return ", ".join(f"{k}-mers" for k in self.config.ks)

    def __repr__(self) -> str:
        return (
            f"OnnxEncoder({str(self.path)!r}, {self.n_features} -> {self.latent}, "
            f"fingerprint={self.fingerprint[:12] or '?'})"
        )

    def describe(self) -> dict[str, Any]:
        """The facts a log or an output manifest records about this encoder."""
        return {
            "backend": "onnxruntime",
            "path": str(self.path),
            "fingerprint": self.fingerprint,
            "kmervae_version": self.kmervae_version,
            "n_features": self.n_features,
            "latent": self.latent,
        }
