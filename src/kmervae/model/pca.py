"""Principal components of the per-group CLR: the out-of-core fit and the projection.

One definition serves the ``pca-N`` baselines of :mod:`kmervae.evaluate.representations` and
the PCA model folders of ``kmervae fit-pca`` (:mod:`kmervae.model.pca_folder`).

The fit reads the chosen rows block by block, takes their CLR (:mod:`kmervae.transform`) and
accumulates the column sums and the F x F scatter matrix in float64, so memory is O(F²)
(60 MB for 2772 features) whatever the number of rows. The covariance (divisor rows - 1, as
``np.cov``) is then decomposed with ``eigh``. Each axis is turned so that its largest loading
(in absolute value; the first of equals) is positive, so a fit is reproducible.

This module imports NumPy and kmervae's I/O, never torch.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np

from kmervae.errors import InputError, KmervaeError
from kmervae.io.dataset import ProfileDataset
from kmervae.kmers.layout import FeatureLayout
from kmervae.model.data import columns_for, read_rows
from kmervae.transform import clr

log = logging.getLogger(__name__)

#: rows read and transformed at once while fitting
FIT_BLOCK_ROWS = 4096


@dataclass(frozen=True)
class CLRDecomposition:
    """The eigen-decomposition of the CLR covariance of some rows.

    Attributes
    ----------
    ks : the k-groups, in column order.
    mean : float64 (F,), the mean CLR row.
    variances : float64 (F,), the eigenvalues, descending, negatives (round-off) set to 0.
    axes : float64 (F x F), column j the unit axis of ``variances[j]``, signs fixed.
    n_rows : the rows it was computed from.
    """

    ks: tuple[int, ...]
    mean: np.ndarray
    variances: np.ndarray
    axes: np.ndarray
    n_rows: int


def fix_signs(axes: np.ndarray) -> np.ndarray:
    """``axes`` (F x n, one axis a column) with each column turned so that its entry of
    largest absolute value (the first of equals) is positive."""
    largest = np.argmax(np.abs(axes), axis=0)
    signs = np.where(axes[largest, np.arange(axes.shape[1])] < 0, -1.0, 1.0)
    return axes * signs


def decompose_clr(
    dataset: ProfileDataset,
    rows: np.ndarray,
    ks: tuple[int, ...],
    *,
    block_rows: int = FIT_BLOCK_ROWS,
    progress: Callable[[int], None] | None = None,
) -> CLRDecomposition:
    """Mean and eigen-decomposition of the CLR covariance of ``rows`` of ``dataset``.

    Parameters
    ----------
    rows : int64 (n,), sorted row indices, n >= 2.
    ks : the k-groups to read (their columns are picked from the dataset's layout).
    block_rows : rows read at once; memory does not depend on n.
    progress : called with the number of rows after each block.

    Raises
    ------
    InputError
        The dataset lacks one of ``ks``, fewer than 2 rows, or a row with NaN, an infinity
        or a negative frequency (named by its id).
    """
    rows = np.asarray(rows, np.int64)
    if len(rows) < 2:
        raise InputError(f"{dataset.path}: {len(rows)} row(s); a covariance needs at least 2")
    if block_rows < 1:
        raise KmervaeError(f"block_rows must be at least 1, got {block_rows}")
    layout = FeatureLayout(tuple(ks))
    columns = columns_for(dataset, layout.ks)
    n_features = layout.n_features
    scatter = np.zeros((n_features, n_features), np.float64)
    total = np.zeros(n_features, np.float64)
    shift: np.ndarray | None = None
    for start in range(0, len(rows), block_rows):
        part = rows[start : start + block_rows]
        x = clr(read_rows(dataset, columns, part), layout).astype(np.float64)
        if shift is None:
            # sums around the first block's mean: no cancellation against a large mean
            shift = x.mean(axis=0)
        x -= shift
        scatter += x.T @ x
        total += x.sum(axis=0)
        if progress is not None:
            progress(len(part))
    assert shift is not None
    n = len(rows)
    mean_shifted = total / n
    covariance = (scatter - n * np.outer(mean_shifted, mean_shifted)) / (n - 1)
    values, vectors = np.linalg.eigh(covariance)
    order = np.argsort(values)[::-1]
    return CLRDecomposition(
        ks=layout.ks,
        mean=shift + mean_shifted,
        variances=np.maximum(values[order], 0.0),
        axes=fix_signs(vectors[:, order]),
        n_rows=n,
    )


@dataclass(frozen=True)
class PCAProjection:
    """The first components of a :class:`CLRDecomposition`: what maps a profile to its
    coordinates.

    Attributes
    ----------
    ks : the k-groups of the input, in column order.
    mean : float64 (F,), the mean CLR row of the fit.
    components : float64 (F x n), the axes, one a column.
    explained_variance : float64 (n,), the variance along each axis.
    explained_variance_ratio : float64 (n,), its share of the total CLR variance.
    n_rows : the rows fitted.
    """

    ks: tuple[int, ...]
    mean: np.ndarray
    components: np.ndarray
    explained_variance: np.ndarray
    explained_variance_ratio: np.ndarray
    n_rows: int

    @classmethod
    def from_decomposition(cls, fit: CLRDecomposition, n_components: int) -> PCAProjection:
        """The first ``n_components`` axes of ``fit``.

        Raises
        ------
        KmervaeError
            ``n_components`` is not in 1..F.
        """
        n_features = len(fit.mean)
        if not 1 <= n_components <= n_features:
            raise KmervaeError(
                f"the CLR of k-groups {list(fit.ks)} has {n_features} columns; choose 1 to "
                f"{n_features} components, not {n_components}"
            )
        total = float(fit.variances.sum())
        variance = fit.variances[:n_components].copy()
        return cls(
            ks=tuple(fit.ks),
            mean=fit.mean.copy(),
            components=np.ascontiguousarray(fit.axes[:, :n_components]),
            explained_variance=variance,
            explained_variance_ratio=variance / max(total, 1e-300),
            n_rows=fit.n_rows,
        )

    @property
    def layout(self) -> FeatureLayout:
        return FeatureLayout(tuple(self.ks))

    @property
    def n_features(self) -> int:
        return int(self.components.shape[0])

    @property
    def n_components(self) -> int:
        return int(self.components.shape[1])

    @cached_property
    def _float32(self) -> tuple[np.ndarray, np.ndarray]:
        return self.mean.astype(np.float32), self.components.astype(np.float32)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """Coordinates of raw frequency profiles: float (n x F) in the layout of ``ks`` ->
        float32 (n x n_components), (CLR(x) - mean) @ components, computed in float32."""
        mean, components = self._float32
        return (clr(x, self.layout) - mean) @ components
