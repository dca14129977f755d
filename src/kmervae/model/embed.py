"""Embedding: profile rows in, mu (and optionally sigma) out, block by block.

One loop serves every backend: anything with ``config``, ``fingerprint`` and
``encode(x) -> (mu, logvar)`` on NumPy arrays (:class:`EncoderBackend`). Three backends
exist: :class:`TorchEncoder` wraps the PyTorch encoder of a model folder or checkpoint (CPU,
CUDA or MPS), :class:`kmervae.model.onnx_runtime.OnnxEncoder` runs an exported ``.onnx`` file
with ONNX Runtime, and :class:`kmervae.model.pca_folder.PCAEncoder` projects onto the
components of a PCA model folder with NumPy. The ONNX and PCA paths never import torch: every
torch import in this module is inside a function that only the torch backend calls.

Memory stays flat whatever the number of rows: a background thread reads, converts and
checks the next block (:mod:`kmervae.io.row_blocks`) while the current one is encoded.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO, Protocol

import numpy as np

from kmervae.cores import available_threads
from kmervae.errors import InputError, KmervaeError
from kmervae.io.atomic import check_writable
from kmervae.io.dataset import ProfileDataset, dataset_record, open_dataset
from kmervae.io.embeddings import EmbeddingsWriter
from kmervae.io.npy import first_bad_row
from kmervae.io.prefetch import Prefetch
from kmervae.io.row_blocks import DatasetBlocks, FeatureBlock, NpyStreamBlocks
from kmervae.model.config import EncoderConfig, VAEConfig, read_model_folder
from kmervae.model.device import check_device_name, resolve_device

if TYPE_CHECKING:
    import torch

    from kmervae.model.files import LoadedModel
    from kmervae.model.vae import Encoder

log = logging.getLogger(__name__)

#: rows per block: measured best on a 2-core AVX-512 CPU for the reference model
#: (benchmarks/embed_speed.py); larger blocks fall out of cache, smaller ones pay overhead
DEFAULT_BATCH_SIZE = 1024
#: the largest block: 2^20 rows of the reference 2772 features are 11 GB of float32
MAX_BATCH_SIZE = 1 << 20


class EncoderBackend(Protocol):
    """What the embedding loop needs of an encoder.

    ``encode`` takes float32 raw frequency profiles (n x F, F = ``config.n_features``, in the
    layout of ``config.ks``) and returns ``(mu, logvar)``, float32 (n x latent) each. A
    backend whose ``has_sigma`` is False (a PCA model) has no sigma to write.
    """

    @property
    def config(self) -> EncoderConfig: ...

    @property
    def fingerprint(self) -> str: ...

    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]: ...


class TorchEncoder:
    """The PyTorch encoder behind the :class:`EncoderBackend` interface.

    Parameters
    ----------
    encoder : a :class:`kmervae.model.vae.Encoder` (its weights are used as they are).
    fingerprint : SHA-256 of the weights file (identifies the embedding space).
    source : where the model was read from (for the manifest).
    device : ``auto``, ``cpu``, ``cuda[:N]`` or ``mps``.
    threads : CPU threads for torch (``torch.set_num_threads``); None leaves torch's choice.
    fast : on the CPU, run the layers through oneDNN with BatchNorm folded into the linear
        weights when this torch offers it (about twice as fast as the default BLAS on some
        CPUs); checked against the module on construction, and not used if it differs.
    """

    backend = "torch"

    def __init__(
        self,
        encoder: Encoder,
        *,
        fingerprint: str = "",
        source: str | Path | None = None,
        device: str = "auto",
        threads: int | None = None,
        fast: bool = True,
    ):
        import torch

        self.device = resolve_device(device)
        if threads and self.device.type == "cpu":
            torch.set_num_threads(int(threads))
        self.module = encoder.to(self.device).eval()
        self.config: VAEConfig = encoder.config
        self.fingerprint = fingerprint
        self.path = Path(source) if source is not None else None
        self._forward: Callable[[torch.Tensor], tuple[torch.Tensor, torch.Tensor]] = self.module
        if fast and self.device.type == "cpu":
            from kmervae.model.fused import fused_cpu_forward

            self._forward = fused_cpu_forward(self.module) or self.module

    @property
    def n_features(self) -> int:
        return self.config.n_features

    @property
    def latent(self) -> int:
        return self.config.latent

    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """float32 profiles (n x F) -> (mu, logvar), float32 (n x latent) each."""
        import torch

        with torch.inference_mode():
            batch = torch.from_numpy(np.ascontiguousarray(x, dtype=np.float32))
            if self.device.type != "cpu":
                batch = batch.to(self.device, non_blocking=True)
            mu, logvar = self._forward(batch)
            return mu.float().cpu().numpy(), logvar.float().cpu().numpy()

    def describe(self) -> dict[str, Any]:
        """The facts a manifest records about this encoder."""
        return {
            "backend": "torch",
            "path": str(self.path) if self.path else None,
            "fingerprint": self.fingerprint,
            "device": str(self.device),
            "n_features": self.n_features,
            "latent": self.latent,
        }


def load_encoder(
    path: str | Path, *, device: str = "auto", threads: int | None = None
) -> EncoderBackend:
    """Open a model for embedding: an ``.onnx`` file (ONNX Runtime, no torch), a PCA model
    folder (NumPy, no torch), or a model folder or training checkpoint ``.pt`` (PyTorch).

    Raises
    ------
    InputError
        ``path`` is not a readable kmervae model.
    KmervaeError
        The device is unknown or absent, or the backend is not installed.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such model (expected a model folder, a .pt or a .onnx)")
    if path.suffix.lower() == ".onnx":
        if device not in ("auto", "cpu"):
            raise KmervaeError(
                f"an ONNX encoder runs on the CPU here; for device {device} give the model "
                "folder instead"
            )
        try:
            from kmervae.model.onnx_runtime import OnnxEncoder

            return OnnxEncoder(path, intra_op_num_threads=threads or 0)
        except ImportError as exc:
            raise KmervaeError(
                f"ONNX models need onnxruntime ({exc.name} is missing): pip install onnxruntime"
            ) from None
    check_device_name(device)
    if path.is_dir() and read_model_folder(path)["kind"] == "pca":
        if device not in ("auto", "cpu"):
            raise KmervaeError(f"a PCA model runs on the CPU with NumPy, not on {device}")
        from kmervae.model.pca_folder import PCAEncoder

        return PCAEncoder(path, threads=threads)
    from kmervae._extras import require

    require("torch", extra="train", purpose=f"{path} (a model folder or .pt)")
    from kmervae.model.files import load_model

    loaded = load_model(path)
    return TorchEncoder(
        loaded.encoder, fingerprint=loaded.fingerprint, source=path, device=device, threads=threads
    )


def describe_encoder(encoder: EncoderBackend) -> dict[str, Any]:
    """Backend, path, fingerprint and config of an encoder, for a manifest."""
    describe = getattr(encoder, "describe", None)
    record: dict[str, Any] = dict(describe()) if callable(describe) else {}
    record.setdefault("backend", type(encoder).__name__)
    path = record.get("path") or getattr(encoder, "path", None)
    record["path"] = str(Path(path).resolve()) if path else None
    record["fingerprint"] = encoder.fingerprint
    record["config"] = encoder.config.to_json()
    return record


# -- the loop ------------------------------------------------------------------------------


@dataclass
class EmbedSummary:
    """What an embedding run did."""

    output: Path | None  # the store written; None in pipe mode
    n_rows: int
    latent: int
    seconds: float
    backend: str
    sigma: bool = False
    input_sha256: str = ""

    @property
    def rows_per_second(self) -> float:
        return self.n_rows / max(self.seconds, 1e-9)


def _encode_blocks(
    encoder: EncoderBackend,
    blocks: Iterator[FeatureBlock] | DatasetBlocks | NpyStreamBlocks,
    emit: Callable[[FeatureBlock, np.ndarray, np.ndarray], None],
    *,
    name_row: Callable[[int], str],
    progress: Callable[[int], None] | None,
    while_reading: Callable[[], None] | None = None,
) -> int:
    """Encode every block (read ahead in a thread), hand (block, mu, logvar) to ``emit``;
    ``while_reading`` runs first, while the thread fetches the first blocks."""
    n = 0
    reader: Prefetch[FeatureBlock] = Prefetch(blocks, name="kmervae-embed-reader")
    try:
        if while_reading is not None:
            while_reading()
        for block in reader:
            mu, logvar = encoder.encode(block.x)
            if mu.shape != (block.x.shape[0], encoder.config.latent):
                raise KmervaeError(
                    f"the encoder returned mu of shape {mu.shape} for {block.x.shape[0]} rows"
                )
            row = first_bad_row(mu)
            if row >= 0:
                why = (
                    "has negative values (features must be k-mer frequencies, not CLR values)"
                    if (block.x[row] < 0).any()
                    else "gives a non-finite embedding"
                )
                raise InputError(f"{name_row(block.start + row)} {why}")
            emit(block, mu, logvar)
            n += block.x.shape[0]
            if progress is not None:
                progress(block.x.shape[0])
    finally:
        reader.close()
    return n


def _open_model(
    model: str | Path | EncoderBackend | LoadedModel, device: str, threads: int | None
) -> EncoderBackend:
    if isinstance(model, str | Path):
        return load_encoder(model, device=device, threads=threads)
    if hasattr(model, "encode"):
        return model
    if hasattr(model, "encoder") and hasattr(model, "fingerprint"):  # a LoadedModel
        return TorchEncoder(
            model.encoder,
            fingerprint=model.fingerprint,
            source=model.source,
            device=device,
            threads=threads,
        )
    raise KmervaeError(f"not a model: {type(model).__name__}")


def _check_batch_size(batch_size: int) -> None:
    if not 1 <= batch_size <= MAX_BATCH_SIZE:
        raise KmervaeError(f"batch size must be 1 to {MAX_BATCH_SIZE}, got {batch_size}")


def embed_profiles(
    model: str | Path | EncoderBackend | LoadedModel,
    dataset: str | Path | ProfileDataset,
    output: str | Path,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    threads: int | None = None,
    device: str = "auto",
    sigma: bool = False,
    progress: Callable[[int], None] | None = None,
    provenance: dict[str, Any] | None = None,
    overwrite: bool = False,
    on_writer: Callable[[EmbeddingsWriter], None] | None = None,
) -> EmbedSummary:
    """Embed every row of a profile dataset into a new embedding store.

    Parameters
    ----------
    model
        A model folder (a VAE's or a PCA's), a training checkpoint ``.pt`` or an exported
        ``.onnx`` (path), a :class:`~kmervae.model.files.LoadedModel`, or any
        :class:`EncoderBackend`.
    dataset
        A native dataset folder or a legacy ``NAME.npy`` (path or opened). Its layout must
        contain the model's k-groups; float16 features are converted to float32.
    output
        The store folder to write (:mod:`kmervae.io.embeddings`): ``embeddings.npy``
        float32 (N x latent) holding mu, ``sigma.npy`` with ``sigma=True``, ``ids.txt``,
        ``lengths.npy`` int64 (N,), and for native datasets ``gc.npy`` float32 and
        ``sources.npy`` int32. It appears only when complete.
    batch_size
        Rows encoded at once (and read ahead by the reader thread).
    threads
        CPU threads for the encoder; None: all cores this process may use.
    device
        ``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda[:N]`` or ``mps``; ONNX: CPU.
    sigma
        Also write sigma = exp(0.5 log var); a PCA model has none (an error).
    progress
        Called with the number of rows after each block.
    provenance
        Recorded in the manifest (version, command line, ...).
    overwrite
        Replace ``output`` if it exists.
    on_writer
        Called with the writer once its temporary folder exists (e.g. to put a log there).

    Returns
    -------
    EmbedSummary

    Raises
    ------
    InputError
        Unreadable model or dataset, k-groups missing from the dataset, an empty dataset,
        a row with NaN or infinite features (named by its id).
    """
    started = time.perf_counter()
    _check_batch_size(batch_size)
    output = Path(output)
    check_writable(output, overwrite)
    ds = dataset if isinstance(dataset, ProfileDataset) else open_dataset(dataset)
    if ds.n_rows == 0:
        raise InputError(f"{ds.path}: the dataset has no rows; nothing to embed")
    threads = threads or available_threads()
    encoder = _open_model(model, device, threads)
    model_record = describe_encoder(encoder)
    if sigma and not getattr(encoder, "has_sigma", True):
        raise KmervaeError(
            f"{model_record['path']}: a PCA model has no sigma (its embedding is a "
            "projection, without spread); embed it without sigma"
        )
    _check_layout(ds, encoder.config, model_record["path"] or f"({model_record['backend']})")
    blocks = DatasetBlocks(ds, encoder.config.ks, batch_size)
    with EmbeddingsWriter(
        output,
        encoder.config.latent,
        sigma=sigma,
        columns=blocks.row_columns,
        overwrite=overwrite,
    ) as writer:
        if on_writer is not None:
            on_writer(writer)
        log.info(
            "embedding %d rows of %s with %s (%s, fingerprint %s)",
            ds.n_rows,
            ds.path,
            model_record["path"],
            model_record["backend"],
            encoder.fingerprint[:12] or "?",
        )
        log.debug("model: %s", model_record)
        log.debug("dataset: %s (%s, %d rows, %s)", ds.path, ds.kind, ds.n_rows, ds.dtype)

        def emit(block: FeatureBlock, mu: np.ndarray, logvar: np.ndarray) -> None:
            writer.append(mu, np.exp(0.5 * logvar) if sigma else None, **block.columns)

        def name_row(row: int) -> str:
            return f"{ds.path}: row {row + 1} (id {ds.id_of_row(row)})"

        def copy_ids() -> None:
            for ids in ds.iter_ids():
                writer.append_ids(ids)

        n = _encode_blocks(
            encoder, blocks, emit, name_row=name_row, progress=progress, while_reading=copy_ids
        )
        source = dataset_record(ds, features_sha256=blocks.sha256)
        log.debug("dataset checksums: %s", source)
        writer.close({"model": model_record, "dataset": source, "provenance": provenance or {}})
    seconds = time.perf_counter() - started
    log.info("%d rows embedded in %.1f s (%.0f rows/s) into %s", n, seconds, n / seconds, output)
    return EmbedSummary(
        output, n, encoder.config.latent, seconds, model_record["backend"], sigma, blocks.sha256
    )


def _check_layout(ds: ProfileDataset, config: EncoderConfig, model_name: str) -> None:
    """The dataset must hold every k-group the model reads; one line naming both if not."""
    try:
        ds.layout.subset_columns(tuple(config.ks))
    except ValueError:
        raise InputError(
            f"{ds.path}: the dataset has k-groups {','.join(map(str, ds.layout.ks))} "
            f"({ds.layout.n_features} features) but the model {model_name} needs k-groups "
            f"{','.join(map(str, config.ks))} ({config.n_features} features): another "
            "feature layout"
        ) from None


def embed_npy_stream(
    model: str | Path | EncoderBackend | LoadedModel,
    source: BinaryIO,
    sink: BinaryIO,
    *,
    batch_size: int = DEFAULT_BATCH_SIZE,
    threads: int | None = None,
    device: str = "auto",
    progress: Callable[[int], None] | None = None,
    name: str = "stdin",
) -> EmbedSummary:
    """Pipe mode: one ``.npy`` of profiles in, one ``.npy`` of mu out, streamed in blocks.

    Parameters
    ----------
    source
        A binary stream holding a 2-D float ``.npy``: N x F features in the model's layout,
        N x (1 + F) with a leading length column (legacy), or the 6…1-mer layout (with or
        without the length column) for a model that uses a subset of its k-groups.
    sink
        A binary stream that receives a float32 (N x latent) ``.npy``; its header is written
        first, then the rows block by block. Nothing else is written to it.

    Raises
    ------
    InputError
        Not a float ``.npy``, columns that fit no known layout, no rows, a truncated stream,
        a row with NaN or infinite values (named by its 1-based row number).
    """
    from numpy.lib import format as npformat

    started = time.perf_counter()
    _check_batch_size(batch_size)
    threads = threads or available_threads()
    encoder = _open_model(model, device, threads)
    blocks = NpyStreamBlocks(source, encoder.config.ks, batch_size, name)
    latent = encoder.config.latent
    header = {"descr": "<f4", "fortran_order": False, "shape": (blocks.n_rows, latent)}
    npformat.write_array_header_1_0(sink, header)

    def emit(block: FeatureBlock, mu: np.ndarray, logvar: np.ndarray) -> None:
        sink.write(np.ascontiguousarray(mu, dtype="<f4").data.cast("B"))

    n = _encode_blocks(
        encoder, blocks, emit, name_row=lambda row: f"{name}: row {row + 1}", progress=progress
    )
    sink.flush()
    seconds = time.perf_counter() - started
    log.info("%d rows embedded in %.1f s (%.0f rows/s)", n, seconds, n / seconds)
    return EmbedSummary(None, n, latent, seconds, describe_encoder(encoder)["backend"])
