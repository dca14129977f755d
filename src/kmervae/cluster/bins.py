"""One FASTA file per cluster (a bin), written in one streamed pass over the assemblies."""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kmervae.errors import InputError
from kmervae.io.fasta import file_stem, read_fasta_records

log = logging.getLogger(__name__)

#: sequence bytes held in memory before the buffered bins are appended to their files
FLUSH_BYTES = 64 << 20


def bin_clusters(labels: np.ndarray, lengths: np.ndarray, min_bin_size: int) -> np.ndarray:
    """Clusters (int64, ascending) whose contigs add up to at least ``min_bin_size`` bp."""
    member = labels >= 0
    total = np.bincount(labels[member], weights=np.asarray(lengths)[member])
    return np.flatnonzero(total >= min_bin_size).astype(np.int64)


def write_bins(
    directory: Path,
    fasta: Sequence[str | Path],
    ids: Sequence[str],
    labels: np.ndarray,
    lengths: np.ndarray,
    min_bin_size: int,
) -> dict[str, int]:
    """Write ``directory/<cluster>.fna`` for every cluster of at least ``min_bin_size`` bp.

    The FASTA files are read once, in order; a record goes to the bin of its id, its
    sequence on one line (as ``seqkit seq -w 0`` writes it). Ids are
    matched as they are or, when a file's ids appear only with the file's stem in front
    (``profile --prefix-ids``: ``STEM_ID``), with that prefix. Memory: the id table and at
    most :data:`FLUSH_BYTES` of buffered sequence.

    Raises
    ------
    InputError
        A contig of a written bin is in none of the FASTA files (the first few are named),
        or a contig appears twice.
    """
    started = time.perf_counter()
    chosen = bin_clusters(labels, lengths, min_bin_size)
    wanted = np.isin(labels, chosen)
    bin_of = {ids[r]: int(labels[r]) for r in np.flatnonzero(wanted).tolist()}
    found: set[str] = set()
    buffers: dict[int, list[bytes]] = {}
    held = 0
    written = 0

    def flush() -> None:
        nonlocal held
        for cluster, parts in buffers.items():
            with open(directory / f"{cluster}.fna", "ab") as fh:
                fh.writelines(parts)
        buffers.clear()
        held = 0

    for path in fasta:
        prefix: str | None = None
        decided = False
        stem = file_stem(path)
        for ident, header, seq in read_fasta_records(path):
            if not decided:
                if ident not in bin_of and f"{stem}_{ident}" in bin_of:
                    prefix = stem
                decided = ident in bin_of or prefix is not None
            key = ident if prefix is None else f"{prefix}_{ident}"
            cluster = bin_of.get(key)
            if cluster is None:
                continue
            if key in found:
                raise InputError(f"{path}: contig {key!r} appears twice in the FASTA input")
            found.add(key)
            name = key if prefix is not None else header
            record = b">" + name.encode() + b"\n" + seq + b"\n"
            buffers.setdefault(cluster, []).append(record)
            held += len(record)
            written += 1
            if held >= FLUSH_BYTES:
                flush()
    flush()
    missing = len(bin_of) - len(found)
    if missing:
        absent = [i for i in bin_of if i not in found][:3]
        raise InputError(
            f"{missing} contig(s) of the bins are in none of the FASTA files "
            f"({', '.join(repr(a) for a in absent)}{' …' if missing > 3 else ''})"
        )
    log.info(
        "%d bins of >= %d bp (%d contigs) written in %.1f s",
        len(chosen),
        min_bin_size,
        written,
        time.perf_counter() - started,
    )
    return {"bins": len(chosen), "contigs": written, "min_bin_size": min_bin_size}
