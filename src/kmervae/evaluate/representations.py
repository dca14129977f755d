"""Representations of profile rows behind one small interface: a trained model and baselines.

Every evaluation protocol asks a :class:`Representation` for the vectors of some dataset
rows, so a trained model and the baselines are measured by the same code:

========================  ================================================================
spec                      representation
========================  ================================================================
a path                    mu of a model (model folder, checkpoint ``.pt``, ``.onnx``, PCA
                          model folder)
``w2:PATH``               a VAE's (mu, sigma) side by side: Euclidean distances between them
                          are the 2-Wasserstein distances between the rows' Gaussians
                          N(mu, diag sigma²), which count the model's uncertainty
``clr``                   the CLR-transformed profile, all k-groups of the dataset
``tetra`` (``clr4``)      CLR of the tetranucleotide (4-mer) group alone
``clrK1,K2,..`` e.g.      CLR of the named k-groups (``clr5,4,3,2,1``)
``pca-N``                 the first N principal components of the CLR profile, fitted on a
                          seeded sample of a training / reference dataset
========================  ================================================================

The CLR is :mod:`kmervae.transform` (the only definition). PCA is :mod:`kmervae.model.pca`
(the only definition, shared with the PCA model folders of ``kmervae fit-pca``): fitted out
of core, the mean and the scatter matrix of the CLR rows accumulated block by block
(float64, F x F), so memory is O(F²) whatever the number of fitted rows.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import numpy as np

from kmervae.errors import InputError, KmervaeError
from kmervae.evaluate import BASELINE_HELP, PCA_FIT_ROWS
from kmervae.io.dataset import ProfileDataset
from kmervae.kmers.layout import FeatureLayout
from kmervae.model.data import check_finite, read_rows, sample_rows
from kmervae.model.pca import CLRDecomposition, PCAProjection, decompose_clr
from kmervae.transform import clr

log = logging.getLogger(__name__)

#: the spec prefix of a model's (mu, sigma) representation: ``w2:PATH``
W2_PREFIX = "w2:"
#: rows read, transformed and embedded at once
BLOCK_ROWS = 4096


class Representation(Protocol):
    """What a protocol needs of a representation.

    ``ks`` are the k-groups it reads, in order; ``transform`` maps float32 raw frequency
    rows (n x F, F the width of ``ks``) to float32 vectors (n x ``dim``).
    """

    @property
    def name(self) -> str: ...

    @property
    def ks(self) -> tuple[int, ...]: ...

    @property
    def dim(self) -> int: ...

    def transform(self, x: np.ndarray) -> np.ndarray: ...


def dataset_columns(dataset: ProfileDataset, ks: tuple[int, ...], what: str) -> np.ndarray:
    """Column indices of the k-groups ``ks`` in ``dataset``.

    Raises
    ------
    InputError
        The dataset lacks one of the groups (``what`` names the model or baseline).
    """
    try:
        return dataset.layout.subset_columns(ks)
    except ValueError:
        raise InputError(
            f"{dataset.path}: its k-groups {list(dataset.layout.ks)} do not include the "
            f"{list(ks)} that {what} reads; the feature layouts do not match"
        ) from None


def represent_rows(
    rep: Representation,
    dataset: ProfileDataset,
    rows: np.ndarray,
    *,
    block_rows: int = BLOCK_ROWS,
    progress: Callable[[int], None] | None = None,
) -> np.ndarray:
    """Vectors of ``rows`` of ``dataset``.

    Parameters
    ----------
    rows : int64 (n,), sorted row indices.

    Returns
    -------
    float32 (n x rep.dim), in the order of ``rows``.
    """
    columns = dataset_columns(dataset, rep.ks, rep.name)
    out = np.empty((len(rows), rep.dim), np.float32)
    for start in range(0, len(rows), block_rows):
        part = rows[start : start + block_rows]
        x = read_rows(dataset, columns, part)
        check_finite(x, part, dataset)
        out[start : start + len(part)] = rep.transform(x)
        if progress is not None:
            progress(len(part))
    return out


_FIT_CACHE: dict[tuple[Any, ...], CLRDecomposition] = {}


def _decomposition(
    dataset: ProfileDataset, rows: np.ndarray, ks: tuple[int, ...], block_rows: int
) -> CLRDecomposition:
    """:func:`kmervae.model.pca.decompose_clr` of ``rows``, cached, so PCA at several sizes
    on the same rows fits once."""
    import hashlib

    key = (
        str(Path(dataset.path).resolve()),
        dataset.n_rows,
        dataset.manifest.get("ids_sha256"),
        hashlib.sha256(np.ascontiguousarray(rows, np.int64).tobytes()).hexdigest(),
        ks,
    )
    if key not in _FIT_CACHE:
        fit = decompose_clr(dataset, rows, ks, block_rows=block_rows)
        _FIT_CACHE.clear()  # one fit set at a time: F x F float64 is 60 MB for 2772 features
        _FIT_CACHE[key] = fit
    return _FIT_CACHE[key]


def clr_rows(
    dataset: ProfileDataset, rows: np.ndarray, ks: tuple[int, ...] | None = None
) -> np.ndarray:
    """float32 (n x F) per-group CLR of ``rows`` over the groups ``ks`` (default: all)."""
    return represent_rows(CLRBaseline(ks or dataset.layout.ks), dataset, rows)


def w2_vectors(mu: np.ndarray, sigma: np.ndarray) -> np.ndarray:
    """Rows whose Euclidean distances are the 2-Wasserstein distances between diagonal
    Gaussians N(mu, diag sigma²): W2² = ||mu1 - mu2||² + ||sigma1 - sigma2||², so the
    vectors are mu and sigma side by side (float32, n x 2·latent)."""
    return np.hstack([np.asarray(mu, np.float32), np.asarray(sigma, np.float32)])


@dataclass
class ModelRepresentation:
    """mu of a trained encoder (any :class:`~kmervae.model.embed.EncoderBackend`); with
    ``w2``, mu and sigma side by side (:func:`w2_vectors`)."""

    encoder: Any
    name: str = "model"
    path: Path | None = None
    w2: bool = False

    @property
    def ks(self) -> tuple[int, ...]:
        return tuple(self.encoder.config.ks)

    @property
    def dim(self) -> int:
        return int(self.encoder.config.latent) * (2 if self.w2 else 1)

    def transform(self, x: np.ndarray) -> np.ndarray:
        mu, logvar = self.encoder.encode(x)
        if self.w2:
            return w2_vectors(mu, np.exp(0.5 * np.asarray(logvar, np.float64)))
        return np.asarray(mu, np.float32)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "model",
            "name": self.name,
            "path": str(self.path) if self.path else None,
            "fingerprint": getattr(self.encoder, "fingerprint", ""),
            "ks": list(self.ks),
            "dim": self.dim,
            "distance": "w2 (mu, sigma)" if self.w2 else "mu",
        }


@dataclass
class CLRBaseline:
    """The per-group CLR of the k-groups ``ks`` itself (dimension = their width)."""

    groups: tuple[int, ...]
    label: str = ""

    @property
    def name(self) -> str:
        return self.label or "clr" + ",".join(map(str, self.groups))

    @property
    def ks(self) -> tuple[int, ...]:
        return tuple(self.groups)

    @property
    def dim(self) -> int:
        return FeatureLayout(self.ks).n_features

    def transform(self, x: np.ndarray) -> np.ndarray:
        return clr(x, FeatureLayout(self.ks))

    def describe(self) -> dict[str, Any]:
        return {"kind": "baseline", "name": self.name, "ks": list(self.ks), "dim": self.dim}


@dataclass
class PCABaseline:
    """The first ``n_components`` principal components of the CLR profile of ``ks``: the
    fit and the projection of :mod:`kmervae.model.pca`, which PCA model folders share.

    ``projection`` is set by :meth:`fit`.
    """

    n_components: int
    groups: tuple[int, ...]
    label: str = ""
    projection: PCAProjection | None = None
    fit_info: dict[str, Any] = field(default_factory=dict)

    @property
    def name(self) -> str:
        return self.label or f"pca-{self.n_components}"

    @property
    def ks(self) -> tuple[int, ...]:
        return tuple(self.groups)

    @property
    def dim(self) -> int:
        return self.n_components

    def fit(
        self,
        dataset: ProfileDataset,
        *,
        rows: np.ndarray | None = None,
        max_rows: int = PCA_FIT_ROWS,
        seed: int = 42,
        block_rows: int = BLOCK_ROWS,
    ) -> PCABaseline:
        """Fit on a seeded sample of at most ``max_rows`` of ``rows`` (default: all rows;
        :func:`kmervae.model.data.sample_rows`), out of core."""
        n_features = FeatureLayout(self.ks).n_features
        if not 1 <= self.n_components <= n_features:
            raise KmervaeError(
                f"{self.name}: the CLR of k-groups {list(self.ks)} has {n_features} "
                f"columns; choose 1..{n_features} components"
            )
        candidates = np.arange(dataset.n_rows) if rows is None else np.asarray(rows)
        if len(candidates) < 2:
            raise InputError(f"{dataset.path}: too few rows to fit {self.name}")
        candidates = sample_rows(candidates, max_rows, seed)
        fit = _decomposition(dataset, candidates, self.ks, block_rows)
        self.projection = PCAProjection.from_decomposition(fit, self.n_components)
        n = len(candidates)
        self.fit_info = {
            "dataset": str(dataset.path),
            "rows": n,
            "seed": seed,
            "explained_variance": float(self.projection.explained_variance_ratio.sum()),
        }
        log.info(
            "%s fitted on %d rows of %s: %.1f %% of the CLR variance",
            self.name,
            n,
            dataset.path,
            100 * self.fit_info["explained_variance"],
        )
        return self

    def transform(self, x: np.ndarray) -> np.ndarray:
        if self.projection is None:
            raise KmervaeError(f"{self.name}: fit() before transform()")
        return self.projection.transform(x)

    def describe(self) -> dict[str, Any]:
        return {
            "kind": "baseline",
            "name": self.name,
            "ks": list(self.ks),
            "dim": self.dim,
            "fit": self.fit_info,
        }


_CLR_GROUPS = re.compile(r"^clr(\d(?:,\d)*)$")
_PCA = re.compile(r"^pca-(\d+)$")


def is_baseline(spec: str) -> bool:
    """True when ``spec`` names a baseline rather than a model path."""
    spec = spec.lower()
    return (
        spec in ("clr", "tetra", "clr4") or bool(_CLR_GROUPS.match(spec)) or bool(_PCA.match(spec))
    )


def open_representation(
    spec: str | Path,
    dataset_layout: FeatureLayout,
    *,
    fit_dataset: ProfileDataset | None = None,
    fit_rows: np.ndarray | None = None,
    fit_max_rows: int = PCA_FIT_ROWS,
    seed: int = 42,
    threads: int | None = None,
) -> Representation:
    """A model (path) or a baseline (name) as a :class:`Representation`.

    Parameters
    ----------
    spec : a model folder, checkpoint ``.pt`` or ``.onnx`` (``w2:PATH``: its mu and
        sigma); or a baseline name (``clr``, ``tetra``, ``clrK,..``, ``pca-N``).
    dataset_layout : layout of the evaluated data (``clr`` and ``pca-N`` use all its groups).
    fit_dataset, fit_rows : where PCA is fitted (a training or reference set and, optionally,
        which of its rows); required for ``pca-N``.
    fit_max_rows, seed : PCA is fitted on a seeded sample of at most this many rows.

    Raises
    ------
    InputError
        An unknown baseline name, an unreadable model, or ``pca-N`` without data to fit.
    """
    text = str(spec)
    low = text.lower()
    if low == "clr":
        return CLRBaseline(tuple(dataset_layout.ks), label="clr")
    if low in ("tetra", "clr4"):
        return CLRBaseline((4,), label="tetra")
    match = _CLR_GROUPS.match(low)
    if match:
        ks = tuple(int(k) for k in match.group(1).split(","))
        try:
            FeatureLayout(ks)
        except ValueError as exc:
            raise InputError(f"baseline {text}: {exc}") from None
        return CLRBaseline(ks)
    match = _PCA.match(low)
    if match:
        if fit_dataset is None:
            raise InputError(f"baseline {text} must be fitted: give a dataset to fit it on")
        pca = PCABaseline(int(match.group(1)), tuple(fit_dataset.layout.ks))
        return pca.fit(fit_dataset, rows=fit_rows, max_rows=fit_max_rows, seed=seed)
    w2 = low.startswith(W2_PREFIX)
    path = Path(model_path(text))
    if not path.exists():
        raise InputError(f"{text}: neither a model path nor a baseline ({BASELINE_HELP})")
    from kmervae.model.embed import load_encoder

    encoder = load_encoder(path, device="cpu", threads=threads)
    if w2 and not getattr(encoder, "has_sigma", True):
        raise InputError(f"{text}: a PCA model has no sigma; w2: needs a VAE")
    name = _model_name(path)
    return ModelRepresentation(encoder, name=f"{name} (w2)" if w2 else name, path=path, w2=w2)


def model_path(spec: str | Path) -> str:
    """The model path of a model spec (``w2:PATH`` -> ``PATH``); other specs unchanged."""
    text = str(spec)
    return text[len(W2_PREFIX) :] if text.lower().startswith(W2_PREFIX) else text


def _model_name(path: Path) -> str:
    """A short name: ``run1/model`` -> ``run1``; ``x/model.onnx`` -> ``model``."""
    if path.name == "model" and path.parent.name:
        return path.parent.name
    return path.stem if path.is_file() else path.name


def describe_representation(rep: Representation) -> dict[str, Any]:
    describe = getattr(rep, "describe", None)
    if callable(describe):
        return dict(describe())
    return {"name": rep.name, "ks": list(rep.ks), "dim": rep.dim}
