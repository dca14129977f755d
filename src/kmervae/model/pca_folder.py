"""PCA model folders: ``kmervae fit-pca`` fits one, the embedding loop runs it.

A PCA model folder::

    config.json   format "kmervae-model", schema_version, kind "pca", kmervae_version,
                  model (PCAConfig: ks, latent), layout (ks, widths, n_features)
    pca.npz       mean float64 (F,), components float64 (F x N), explained_variance
                  float64 (N,), explained_variance_ratio float64 (N,)
    card.json     the model card: kind, components, explained variance (ratio), rows used,
                  the sample, the dataset record of the fitted data (training_data),
                  provenance, weights_sha256 (the SHA-256 of pca.npz)
    README.md     the same card for people
    kmervae.log   the log of the command that wrote it (written by the command line)

The SHA-256 of ``pca.npz`` is the model's fingerprint, as the SHA-256 of the weights file is
a VAE's. ``pca.npz`` is written with fixed member dates, so one fit of the same rows gives
the same file and the same fingerprint. :class:`PCAEncoder` is the model's backend of the
embedding loop (:class:`kmervae.model.embed.EncoderBackend`): mu is the projection of the
CLR. This module needs NumPy only: neither torch nor safetensors.
"""

from __future__ import annotations

import json
import logging
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kmervae._version import __version__
from kmervae.cores import available_threads
from kmervae.errors import InputError, KmervaeError
from kmervae.io.atomic import (
    check_writable,
    naming_oserrors,
    remove_path,
    replace_path,
    temporary_name,
)
from kmervae.io.dataset import ProfileDataset, dataset_record, open_dataset
from kmervae.model.config import (
    MODEL_FORMAT,
    MODEL_SCHEMA,
    PCAConfig,
    read_model_folder,
)
from kmervae.model.data import sample_rows
from kmervae.model.pca import FIT_BLOCK_ROWS, PCAProjection, decompose_clr
from kmervae.provenance import file_sha256

log = logging.getLogger(__name__)

#: the arrays of a PCA model folder
ARRAYS_FILE = "pca.npz"
ARRAY_NAMES = ("mean", "components", "explained_variance", "explained_variance_ratio")
#: the date of every member of ``pca.npz`` (the earliest a zip holds): the bytes of the file
#: then depend on the arrays alone
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)


def _write_arrays(path: Path, projection: PCAProjection) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_STORED) as archive:
        for name in ARRAY_NAMES:
            array = np.ascontiguousarray(getattr(projection, name), np.float64)
            member = zipfile.ZipInfo(f"{name}.npy", date_time=_ZIP_DATE)
            with archive.open(member, "w", force_zip64=True) as fh:
                np.lib.format.write_array(fh, array, allow_pickle=False)


def _read_arrays(path: Path, config: PCAConfig, n_rows: int) -> PCAProjection:
    """The projection stored in ``path``, its shapes checked against ``config``."""
    n, k = config.n_features, config.latent
    shapes = {
        "mean": (n,),
        "components": (n, k),
        "explained_variance": (k,),
        "explained_variance_ratio": (k,),
    }
    arrays: dict[str, np.ndarray] = {}
    try:
        with np.load(path, allow_pickle=False) as stored:
            for name in ARRAY_NAMES:
                arrays[name] = np.asarray(stored[name], np.float64)
    except KeyError as exc:
        raise InputError(f"{path}: no array {exc.args[0]!r}") from None
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise InputError(f"{path}: cannot read the PCA arrays ({exc})") from None
    for name, shape in shapes.items():
        if arrays[name].shape != shape:
            raise InputError(
                f"{path}: {name} has shape {arrays[name].shape}, the config needs {shape}"
            )
        if not np.isfinite(arrays[name]).all():
            raise InputError(f"{path}: {name} holds NaN or infinite values")
    return PCAProjection(ks=tuple(config.ks), n_rows=n_rows, **arrays)


def card_markdown(card: dict[str, Any]) -> str:
    """The human-readable card of a PCA model."""
    ratio = card["explained_variance_ratio"]
    firsts = ", ".join(f"{100 * r:.2f} %" for r in ratio[:5])
    sample = card.get("sample")
    rows = f"{card['rows_used']} rows" + (
        f" (a sample, seed {sample['seed']})" if sample else " (all rows)"
    )
    data = card.get("training_data") or {}
    lines = [
        "# kmervae PCA model",
        "",
        "## Projection",
        "",
        f"- k-groups: {', '.join(map(str, card['ks']))} ({card['n_features']} features, "
        "per-group CLR with a 0.5/n pseudocount)",
        f"- {card['components']} principal components of the CLR: "
        f"{100 * card['explained_variance_ratio_total']:.2f} % of its variance "
        f"(the first: {firsts})",
        "- the embedding of a contig is (CLR - mean) @ components; it has no sigma",
        "",
        "## Fitted on",
        "",
        f"- {data.get('path', '?')}: {rows} of {data.get('n_rows', '?')}",
        f"- ids SHA-256 {data.get('ids_sha256', '?')}",
        "",
    ]
    provenance = card.get("provenance") or {}
    if provenance.get("command"):
        lines += ["## Provenance", "", f"    {' '.join(provenance['command'])}", ""]
        lines += [f"{provenance.get('created', '')}, seed {provenance.get('seed')}", ""]
    lines += [
        f"kmervae {card.get('kmervae_version', __version__)}; {ARRAYS_FILE} SHA-256 "
        f"{card.get('weights_sha256', '?')}",
        "",
    ]
    return "\n".join(lines)


def _write_folder(folder: Path, projection: PCAProjection, card: dict[str, Any]) -> str:
    """Write the files of a PCA model into ``folder``; returns the fingerprint."""
    config = PCAConfig(tuple(projection.ks), projection.n_components)
    _write_arrays(folder / ARRAYS_FILE, projection)
    fingerprint = file_sha256(folder / ARRAYS_FILE)
    meta = {
        "format": MODEL_FORMAT,
        "schema_version": MODEL_SCHEMA,
        "kind": "pca",
        "kmervae_version": __version__,
        "model": config.to_json(),
        "layout": config.layout.to_json(),
    }
    (folder / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
    card = {**card, "kmervae_version": __version__, "weights_sha256": fingerprint}
    (folder / "card.json").write_text(json.dumps(card, indent=2) + "\n")
    (folder / "README.md").write_text(card_markdown(card))
    return fingerprint


@dataclass
class PCAFitSummary:
    """What a fit did."""

    output: Path
    rows_used: int
    components: int
    explained_variance_ratio: float  # of all components together
    fingerprint: str
    seconds: float


def check_pca_request(dataset: ProfileDataset, n_components: int, sample: int | None) -> int:
    """The rows a fit of ``n_components`` on ``dataset`` (or a ``sample`` of its rows) uses.

    Raises
    ------
    KmervaeError
        ``n_components`` is below 1, above the dataset's features, or more than the rows
        used allow (a fit on n rows has at most n - 1 axes of non-zero variance);
        ``sample`` is below 2 or above the dataset's rows.
    """
    features = dataset.layout.n_features
    if not 1 <= n_components <= features:
        raise KmervaeError(
            f"components {n_components}: the CLR of {dataset.path} has {features} features; "
            f"choose 1 to {features}"
        )
    if dataset.n_rows < 2:
        raise InputError(f"{dataset.path}: {dataset.n_rows} row(s); a covariance needs at least 2")
    if sample is not None and not 2 <= sample <= dataset.n_rows:
        raise KmervaeError(
            f"sample {sample}: {dataset.path} has {dataset.n_rows} rows; choose 2 to "
            f"{dataset.n_rows}"
        )
    rows = dataset.n_rows if sample is None else sample
    if n_components > rows - 1:
        raise KmervaeError(
            f"components {n_components}: a fit on {rows} rows has at most {rows - 1} "
            "components of non-zero variance"
        )
    return rows


def fit_pca_model(
    dataset: str | Path | ProfileDataset,
    output: str | Path,
    n_components: int,
    *,
    sample: int | None = None,
    seed: int = 42,
    threads: int | None = None,
    block_rows: int = FIT_BLOCK_ROWS,
    progress: Callable[[int], None] | None = None,
    provenance: dict[str, Any] | None = None,
    overwrite: bool = False,
    on_folder: Callable[[Path], None] | None = None,
) -> PCAFitSummary:
    """Fit the first ``n_components`` principal components of the CLR of a profile dataset
    and write them as a PCA model folder.

    Parameters
    ----------
    dataset
        A native dataset folder or a legacy ``NAME.npy`` (path or opened); the model reads
        all its k-groups.
    output
        The model folder to write; it appears only when complete.
    n_components
        Components kept: 1 to the dataset's features, and below the rows used.
    sample, seed
        Fit on a seeded sample of ``sample`` rows (:func:`kmervae.model.data.sample_rows`);
        None: all rows.
    threads
        BLAS threads for the accumulation and the decomposition; None: all cores this
        process may use.
    block_rows
        Rows read at once: memory is O(F²) plus a block, whatever the rows.
    progress
        Called with the number of rows after each block.
    provenance
        Recorded in the card.
    overwrite
        Replace ``output`` if it exists.
    on_folder
        Called with the temporary folder once it exists (e.g. to put a log there).

    Raises
    ------
    KmervaeError
        An output that exists without ``overwrite``, a request that does not fit the data
        (:func:`check_pca_request`); an unreadable dataset, a row with NaN, an infinity or a
        negative frequency (named by its id) as ``InputError``.
    """
    from threadpoolctl import threadpool_limits

    started = time.perf_counter()
    output = Path(output)
    check_writable(output, overwrite)
    ds = dataset if isinstance(dataset, ProfileDataset) else open_dataset(dataset)
    check_pca_request(ds, n_components, sample)
    rows = sample_rows(np.arange(ds.n_rows, dtype=np.int64), sample, seed)
    tmp = temporary_name(output)
    remove_path(tmp)
    try:
        with naming_oserrors(output):
            tmp.mkdir()
            if on_folder is not None:
                on_folder(tmp)
            log.info(
                "fitting %d components of the CLR of %d of %d rows of %s (k-groups %s)",
                n_components,
                len(rows),
                ds.n_rows,
                ds.path,
                ",".join(map(str, ds.layout.ks)),
            )
            with threadpool_limits(limits=threads or available_threads(), user_api="blas"):
                fit = decompose_clr(
                    ds, rows, ds.layout.ks, block_rows=block_rows, progress=progress
                )
            projection = PCAProjection.from_decomposition(fit, n_components)
            ratio = projection.explained_variance_ratio
            card = {
                "kind": "pca",
                "components": n_components,
                "ks": list(ds.layout.ks),
                "n_features": ds.layout.n_features,
                "explained_variance_ratio": ratio.tolist(),
                "explained_variance_ratio_total": float(ratio.sum()),
                "explained_variance": projection.explained_variance.tolist(),
                "total_variance": float(fit.variances.sum()),
                "rows_used": len(rows),
                "sample": None if sample is None else {"rows": sample, "seed": seed},
                "training_data": dataset_record(ds, sample_features=True),
                "provenance": provenance or {},
            }
            fingerprint = _write_folder(tmp, projection, card)
    except BaseException:
        remove_path(tmp)
        raise
    replace_path(tmp, output)
    seconds = time.perf_counter() - started
    log.info(
        "%d components hold %.1f %% of the CLR variance; wrote %s (fingerprint %s) in %.1f s",
        n_components,
        100 * float(ratio.sum()),
        output,
        fingerprint[:12],
        seconds,
    )
    return PCAFitSummary(output, len(rows), n_components, float(ratio.sum()), fingerprint, seconds)


class PCAEncoder:
    """A PCA model folder behind the :class:`~kmervae.model.embed.EncoderBackend` interface.

    Parameters
    ----------
    path : a folder written by :func:`fit_pca_model`.
    threads : BLAS threads of the projection; None leaves NumPy's choice.

    Attributes
    ----------
    config : PCAConfig (ks, latent = the components).
    fingerprint : SHA-256 of ``pca.npz``: identifies the embedding space.
    projection : the :class:`~kmervae.model.pca.PCAProjection`.
    card : the model card.

    Raises
    ------
    InputError
        ``path`` is not a readable PCA model folder.
    """

    backend = "numpy"
    #: a projection has no spread: there is no sigma to write
    has_sigma = False

    def __init__(self, path: str | Path, *, threads: int | None = None):
        from threadpoolctl import ThreadpoolController

        self.path = Path(path)
        meta = read_model_folder(self.path)
        if meta["kind"] != "pca":
            raise InputError(f"{self.path}: a {meta['kind']} model, not a PCA model")
        try:
            self.config = PCAConfig.from_json(meta["model"])
        except (KeyError, TypeError, ValueError, KmervaeError) as exc:
            raise InputError(f"{self.path}/config.json: no usable PCA config ({exc})") from None
        card_file = self.path / "card.json"
        try:
            card = json.loads(card_file.read_text()) if card_file.is_file() else {}
        except (json.JSONDecodeError, UnicodeDecodeError) as exc:
            raise InputError(f"{card_file}: not valid JSON ({exc})") from None
        self.card: dict[str, Any] = card if isinstance(card, dict) else {}
        arrays = self.path / ARRAYS_FILE
        if not arrays.is_file():
            raise InputError(f"{arrays}: no such file; the PCA model is incomplete")
        self.projection = _read_arrays(arrays, self.config, int(self.card.get("rows_used", 0)))
        self.fingerprint = file_sha256(arrays)
        self.threads = threads
        self._controller = ThreadpoolController() if threads else None

    def encode(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Project raw frequency profiles.

        Parameters
        ----------
        x : float (n x F) k-mer frequency profiles in the model's layout.

        Returns
        -------
        mu, logvar
            float32 (n x latent) each: mu the projection of the CLR; log var is -inf (a
            projection has no spread).

        Raises
        ------
        InputError
            ``x`` is not a 2-D array of ``n_features`` columns.
        """
        x = np.asarray(x)
        if x.ndim != 2 or x.shape[1] != self.config.n_features:
            raise InputError(
                f"profiles of shape {x.shape} do not fit the PCA model {self.path.name}, "
                f"which takes n x {self.config.n_features} features (k-groups "
                f"{','.join(map(str, self.config.ks))})"
            )
        if self._controller is not None:
            with self._controller.limit(limits=self.threads, user_api="blas"):
                mu = self.projection.transform(x)
        else:
            mu = self.projection.transform(x)
        return mu, np.full_like(mu, -np.inf)

    def describe(self) -> dict[str, Any]:
        """The facts a log or an output manifest records about this model."""
        return {
            "backend": self.backend,
            "kind": "pca",
            "path": str(self.path),
            "fingerprint": self.fingerprint,
            "n_features": self.config.n_features,
            "latent": self.config.latent,
        }

    def __repr__(self) -> str:
        return (
            f"PCAEncoder({str(self.path)!r}, {self.config.n_features} -> {self.config.latent}, "
            f"fingerprint={self.fingerprint[:12]})"
        )
