"""Numba kernels of the clustering graph: shared-neighbour weights and edge text for mcl.

Pure functions over preallocated arrays: no allocation of outputs, no files. Each has a
naive twin in ``tests/cluster``.
"""

from __future__ import annotations

import numba
import numpy as np

#: weights are written with this many decimals
WEIGHT_DECIMALS = 6
_SCALE = 10**WEIGHT_DECIMALS


@numba.njit(cache=True, nogil=True)
def shared_neighbour_weights(
    sets: np.ndarray, src: np.ndarray, dst: np.ndarray, out: np.ndarray
) -> None:  # pragma: no cover - compiled
    """Jaccard index of the neighbour sets of each edge's two ends.

    Parameters
    ----------
    sets : int (N, m), each row sorted ascending: the contig itself and its neighbours
        (-1 entries, pruned edges, sort first and are ignored).
    src, dst : int (E,), the edges.
    out : float32 (E,), filled with |S(src) ∩ S(dst)| / |S(src) ∪ S(dst)|.
    """
    m = sets.shape[1]
    for e in range(src.shape[0]):
        a = sets[src[e]]
        b = sets[dst[e]]
        i = 0
        j = 0
        while i < m and a[i] < 0:
            i += 1
        while j < m and b[j] < 0:
            j += 1
        size_a = m - i
        size_b = m - j
        common = 0
        while i < m and j < m:
            if a[i] == b[j]:
                common += 1
                i += 1
                j += 1
            elif a[i] < b[j]:
                i += 1
            else:
                j += 1
        union = size_a + size_b - common
        out[e] = common / union if union > 0 else 0.0


@numba.njit(cache=True, nogil=True)
def _write_int(value: np.int64, buf: np.ndarray, pos: int, width: int) -> int:  # pragma: no cover
    """Decimal digits of ``value`` (>= 0) at ``buf[pos:]``, zero-padded to ``width``."""
    digits = 1
    probe = value
    while probe >= 10:
        probe //= 10
        digits += 1
    if digits < width:
        digits = width
    end = pos + digits
    for p in range(end - 1, pos - 1, -1):
        buf[p] = 48 + value % 10
        value //= 10
    return end


@numba.njit(cache=True, nogil=True)
def format_edges(
    src: np.ndarray, dst: np.ndarray, weight: np.ndarray, start: int, buf: np.ndarray
) -> tuple[int, int]:  # pragma: no cover - compiled
    """``src<TAB>dst<TAB>weight<LF>`` lines (mcl's "123" format) from edge ``start`` on.

    Weights are fixed-point with :data:`WEIGHT_DECIMALS` decimals, rounded half up
    (``floor(w * 10**6 + 0.5)``). Stops when the next line might not fit in ``buf``
    (uint8). Returns (next edge, bytes written).
    """
    pos = 0
    e = start
    cap = buf.shape[0]
    while e < src.shape[0]:
        if cap - pos < 64:
            break
        pos = _write_int(np.int64(src[e]), buf, pos, 1)
        buf[pos] = 9
        pos = _write_int(np.int64(dst[e]), buf, pos + 1, 1)
        buf[pos] = 9
        fixed = np.int64(np.floor(np.float64(weight[e]) * _SCALE + 0.5))
        pos = _write_int(fixed // _SCALE, buf, pos + 1, 1)
        buf[pos] = 46
        pos = _write_int(fixed % _SCALE, buf, pos + 1, WEIGHT_DECIMALS)
        buf[pos] = 10
        pos += 1
        e += 1
    return e, pos
