"""Numba kernels for canonical 6…1-mer profiles (pure: no allocation, no I/O).

One pass per record over a rolling 2-bit code counts the 6-mers of every run of A/C/G/T
(lower case included); any other byte ends the run and counting restarts after it. The
smaller k are derived exactly afterwards: the k-mers of a run are the suffixes of its
(k+1)-mers plus the run's first k-mer, so the scan adds the first 5-, 4-, 3-, 2- and 1-mer of
each run (they are the rolling code when the run is 5…1 bases long) and the rest comes from
summing the (k+1)-mer counts over their first base, a contiguous, vectorised sum. Raw counts
are then folded to canonical columns with a precomputed map (each column = the raw count of its
k-mer plus that of its reverse complement) and normalised per group.

Work array layout (int64, 5461 entries): raw counts of 6-mers (4096), 5-mers (1024),
4-mers (256), 3-mers (64), 2-mers (16), 1-mers (4), each indexed by the 2-bit code with the
first base in the most significant bits, then one slot that is always zero (the "reverse
complement" of palindromes in the fold map).
"""

from __future__ import annotations

import numpy as np
from numba import njit

from kmervae.kmers.layout import FEATURE_LAYOUT, canonical_index_map, canonical_kmers

# Byte classes: 0..3 are the bases A, C, G, T.
SKIP = 4  # carriage return, space, tab: not part of the sequence
NEWLINE = 5
HEADER = 6  # '>'
OTHER = 7  # anything else in a sequence line: an ambiguous base that breaks the run

RAW_OFFSETS = np.array([0, 4096, 5120, 5376, 5440, 5456, 5460], dtype=np.int64)  # k = 6…1
WORK_SIZE = 5461
ZERO_SLOT = 5460
N_FEATURES = FEATURE_LAYOUT.n_features
GROUP_OFFSETS = np.array([*FEATURE_LAYOUT.offsets, N_FEATURES], dtype=np.int64)

# meta columns of a finished record
META_LENGTH, META_AMBIGUOUS, META_GC, META_ACGT = 0, 1, 2, 3
META_COLUMNS = 4

# state slots carried between blocks of one stream
ST_CODE, ST_RUN, ST_AMBIG, ST_OPEN, ST_LINE_START, ST_N6 = 0, 1, 2, 3, 4, 5
STATE_SIZE = 6

# scan statuses
SCAN_DONE, SCAN_FULL, SCAN_EMPTY_ID, SCAN_HEADER_CUT, SCAN_TEXT_BEFORE_HEADER = 0, 1, 2, 3, 4


def byte_classes() -> np.ndarray:
    """uint8[256]: class of every byte value (0..3 bases, then SKIP/NEWLINE/HEADER/OTHER)."""
    lut = np.full(256, OTHER, dtype=np.uint8)
    for code, base in enumerate("ACGT"):
        lut[ord(base)] = code
        lut[ord(base.lower())] = code
    for ch in "\r \t\v\f":
        lut[ord(ch)] = SKIP
    lut[ord("\n")] = NEWLINE
    lut[ord(">")] = HEADER
    return lut


def canonical_maps() -> np.ndarray:
    """int64[2, 2772]: for each output column, the work-array slots of its canonical k-mer
    and of that k-mer's reverse complement (:data:`ZERO_SLOT` for palindromes)."""
    out = np.empty((2, N_FEATURES), dtype=np.int64)
    for i, k in enumerate(FEATURE_LAYOUT.ks):
        column = canonical_index_map(k)
        first = np.full(len(canonical_kmers(k)), -1, np.int64)
        second = np.full(len(canonical_kmers(k)), ZERO_SLOT, np.int64)
        for code, col in enumerate(column.tolist()):
            slot = RAW_OFFSETS[i] + code
            if first[col] < 0:
                first[col] = slot
            else:
                second[col] = slot
        lo = FEATURE_LAYOUT.offsets[i]
        out[0, lo : lo + len(first)] = first
        out[1, lo : lo + len(first)] = second
    return out


def new_state() -> np.ndarray:
    state = np.zeros(STATE_SIZE, dtype=np.int64)
    state[ST_LINE_START] = 1
    return state


# work-array offset of the k-mer counts for a run of k = 0…5 bases (index 0 unused)
FIRST_KMER_OFFSETS = np.array([0, 5456, 5440, 5376, 5120, 4096], dtype=np.int64)
FIRST_KMER_MASKS = np.array([0, 3, 15, 63, 255, 1023], dtype=np.int64)


_G0, _G1, _G2, _G3, _G4, _G5, _G6 = (int(x) for x in GROUP_OFFSETS)


@njit(cache=True, nogil=True, inline="always")
def _group_total(work: np.ndarray, lo: int, hi: int) -> int:
    total = 0
    for j in range(lo, hi):
        total += work[j]
    return total


@njit(cache=True, nogil=True, inline="always", error_model="numpy")
def _fold(
    out: np.ndarray,
    work: np.ndarray,
    first: np.ndarray,
    second: np.ndarray,
    lo: int,
    hi: int,
    total: int,
) -> None:
    # column = raw count of the canonical k-mer + that of its reverse complement, over total
    inv = 1.0 / total if total > 0 else 0.0
    for j in range(lo, hi):
        out[j] = (work[first[j]] + work[second[j]]) * inv


@njit(cache=True, nogil=True)
def finish_record(
    state: np.ndarray,
    work: np.ndarray,
    cmap: np.ndarray,
    feats: np.ndarray,
    meta: np.ndarray,
    row: int,
) -> None:
    """Close the open record: write its profile to ``feats[row]`` and its
    length, ambiguous-base, G+C and A/C/G/T counts to ``meta[row]``; reset the state.

    ``feats`` float32[rows, 2772]; ``meta`` int64[rows, 4].
    """
    # suffix marginals: k-mer counts += sum of (k+1)-mer counts over their first base
    for g in range(1, 6):
        lo = RAW_OFFSETS[g]
        n = RAW_OFFSETS[g + 1] - lo
        hi = RAW_OFFSETS[g - 1]
        for j in range(n):
            work[lo + j] += (
                work[hi + j] + work[hi + n + j] + work[hi + 2 * n + j] + work[hi + 3 * n + j]
            )
    first = cmap[0]
    second = cmap[1]
    out = feats[row]
    _fold(out, work, first, second, _G0, _G1, state[ST_N6])
    _fold(out, work, first, second, _G1, _G2, _group_total(work, 4096, 5120))
    _fold(out, work, first, second, _G2, _G3, _group_total(work, 5120, 5376))
    _fold(out, work, first, second, _G3, _G4, _group_total(work, 5376, 5440))
    _fold(out, work, first, second, _G4, _G5, _group_total(work, 5440, 5456))
    _fold(out, work, first, second, _G5, _G6, _group_total(work, 5456, 5460))
    acgt = work[5456] + work[5457] + work[5458] + work[5459]
    meta[row, META_LENGTH] = acgt + state[ST_AMBIG]
    meta[row, META_AMBIGUOUS] = state[ST_AMBIG]
    meta[row, META_GC] = work[5457] + work[5458]
    meta[row, META_ACGT] = acgt
    work[:] = 0
    state[ST_CODE] = 0
    state[ST_RUN] = 0
    state[ST_AMBIG] = 0
    state[ST_OPEN] = 0
    state[ST_N6] = 0


@njit(cache=True, nogil=True)
def scan_fasta(
    buf: np.ndarray,
    pos: int,
    end: int,
    at_eof: bool,
    lut: np.ndarray,
    cmap: np.ndarray,
    state: np.ndarray,
    work: np.ndarray,
    feats: np.ndarray,
    meta: np.ndarray,
    id_spans: np.ndarray,
) -> tuple[int, int, int, int]:
    """Scan FASTA bytes ``buf[pos:end]``, carrying ``state``/``work`` between calls.

    Every record closed by a following header is written to ``feats``/``meta`` from row 0;
    the id (first word) of every header seen is stored as byte offsets in ``id_spans``
    (int64[len(feats) + 1, 2]). The record still open at ``end`` stays in ``state``/``work``
    (close it with :func:`finish_record`).

    Returns ``(status, position, rows written, ids found)``; on SCAN_FULL scanning stopped at
    a header because ``feats`` is full, on an error status ``position`` is where it was found.
    """
    code = state[ST_CODE]
    run = state[ST_RUN]
    ambig = state[ST_AMBIG]
    is_open = state[ST_OPEN]
    line_start = state[ST_LINE_START]
    n6 = state[ST_N6]
    n_rows = 0
    n_ids = 0
    capacity = feats.shape[0]
    i = pos
    status = SCAN_DONE
    while i < end:
        v = lut[buf[i]]
        if v < 4:
            code = ((code << 2) | v) & 4095
            run += 1
            if run >= 6:
                work[code] += 1
                n6 += 1
            else:  # the run's first k-mer for k = run
                work[FIRST_KMER_OFFSETS[run] + (code & FIRST_KMER_MASKS[run])] += 1
            line_start = 0
        elif v == NEWLINE:
            line_start = 1
        elif v == HEADER and line_start:
            if is_open:
                if n_rows == capacity:
                    status = SCAN_FULL
                    break
                state[ST_CODE] = code
                state[ST_RUN] = run
                state[ST_AMBIG] = ambig
                state[ST_N6] = n6
                finish_record(state, work, cmap, feats, meta, n_rows)
                n_rows += 1
                code = 0
                run = 0
                ambig = 0
                n6 = 0
            # the id: first word after '>' (leading blanks skipped)
            j = i + 1
            while j < end and (buf[j] == 32 or buf[j] == 9):
                j += 1
            s = j
            while j < end and buf[j] > 32:
                j += 1
            e = j
            while j < end and buf[j] != 10:
                j += 1
            if j == end and not at_eof:
                status = SCAN_HEADER_CUT
                break
            if e == s:
                status = SCAN_EMPTY_ID
                break
            id_spans[n_ids, 0] = s
            id_spans[n_ids, 1] = e
            n_ids += 1
            is_open = 1
            line_start = 1
            i = j  # at the newline (or end)
        elif v == SKIP:
            line_start = 0
        else:
            if not is_open:
                status = SCAN_TEXT_BEFORE_HEADER
                break
            code = 0
            run = 0
            ambig += 1
            line_start = 0
        i += 1
    state[ST_CODE] = code
    state[ST_RUN] = run
    state[ST_AMBIG] = ambig
    state[ST_OPEN] = is_open
    state[ST_LINE_START] = line_start
    state[ST_N6] = n6
    return status, i, n_rows, n_ids
