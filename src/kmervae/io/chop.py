"""Cut genomes into contigs: fixed or seeded random lengths, ids ``record.N``."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

import numpy as np

from kmervae.errors import KmervaeError
from kmervae.io.atomic import atomic_file, naming_oserrors
from kmervae.io.fasta import file_stem, read_fasta_records, write_wrapped
from kmervae.io.streams import check_readable
from kmervae.provenance import atomic_with_sidecar, run_provenance

#: the columns of ``chop --table``: contig id, genome file name, record id, 0-based start,
#: end and length of the piece
TABLE_COLUMNS = ("contig_id", "file", "record", "start", "end", "length")


@dataclass(frozen=True)
class ChopSpec:
    """How to cut: pieces of ``min_length..max_length`` bp (equal: fixed length).

    A record's last piece is kept if it has at least ``min_keep`` bp; ``step`` (default:
    the piece length) below the piece length makes overlapping pieces.
    """

    min_length: int
    max_length: int
    min_keep: int
    seed: int = 42

    def __post_init__(self) -> None:
        if self.min_length < 1 or self.max_length < self.min_length:
            raise KmervaeError(
                f"contig lengths must satisfy 1 <= min <= max, got "
                f"{self.min_length}..{self.max_length}"
            )
        if not 1 <= self.min_keep <= self.min_length:
            raise KmervaeError(
                f"min_keep must be between 1 and the lower contig length "
                f"({self.min_length}), got {self.min_keep}"
            )


def chop_sequence(
    seq: bytes, spec: ChopSpec, rng: np.random.Generator
) -> Iterator[tuple[int, int]]:
    """``(start, end)`` of each piece of ``seq``; lengths drawn uniformly in the range."""
    start = 0
    while start < len(seq):
        size = (
            spec.min_length
            if spec.min_length == spec.max_length
            else int(rng.integers(spec.min_length, spec.max_length + 1))
        )
        end = min(start + size, len(seq))
        if end - start >= spec.min_keep:
            yield start, end
        start = end


def chop_genomes(
    genomes: list[str | Path],
    output: str | Path,
    spec: ChopSpec,
    *,
    table: str | Path | None = None,
    prefix_ids: bool = False,
    line_width: int = 80,
    overwrite: bool = False,
    provenance: dict[str, Any] | None = None,
) -> dict[str, Any]:
    """Write the pieces of every record of ``genomes`` to FASTA ``output`` (``.gz``: gzip).

    Ids are ``record.N`` (N from 1 within each record), or ``STEM_record.N`` with
    ``prefix_ids`` (STEM: :func:`~kmervae.io.fasta.file_stem`, as in ``profile
    --prefix-ids``). ``table`` gets a header line, then one TSV row per contig
    (:data:`TABLE_COLUMNS`: id, file name, record, start (0-based), end, length); its
    provenance (``provenance``, the cut and the genomes) goes to the sidecar
    ``TABLE.json`` (:func:`kmervae.provenance.sidecar_path`). Returns counts.
    """
    for path in genomes:
        check_readable(path)
    rng = np.random.default_rng(spec.seed)
    output = Path(output)
    n_contigs = n_bases = n_records = 0
    seen_ids: set[str] = set()
    record: dict[str, Any] = {
        "kind": "chop table",
        "columns": list(TABLE_COLUMNS),
        "fasta": str(output.resolve()),
        "genomes": [str(Path(str(g)).resolve()) for g in genomes],
        "spec": {
            "min_length": spec.min_length,
            "max_length": spec.max_length,
            "min_keep": spec.min_keep,
            "seed": spec.seed,
            "prefix_ids": prefix_ids,
        },
        "provenance": provenance or run_provenance(seed=spec.seed),
    }
    with (
        atomic_file(output, overwrite) as tmp,
        atomic_with_sidecar(Path(table), record, overwrite=overwrite)
        if table
        else contextlib.nullcontext() as tmp_table,
    ):
        if output.name.endswith(".gz"):
            from isal import igzip

            raw: IO[bytes] = igzip.open(tmp, "wb", compresslevel=2)
        else:
            raw = open(tmp, "wb")  # noqa: SIM115
        out = _Named(raw, output)
        tab = None
        if tmp_table is not None and table is not None:
            tab = _Named(open(tmp_table, "w"), Path(table))  # noqa: SIM115
        try:
            if tab:
                tab.write("\t".join(TABLE_COLUMNS) + "\n")
            for path in genomes:
                stem = file_stem(path)
                for number, (ident, _header, seq) in enumerate(read_fasta_records(path), 1):
                    n_records += 1
                    base = f"{stem}_{ident}" if prefix_ids else ident
                    if base in seen_ids:
                        raise KmervaeError(
                            f"{path}: record {number}: id {ident!r} repeats an earlier "
                            "record (prefix_ids prefixes each id with its file's stem)"
                        )
                    seen_ids.add(base)
                    for n, (start, end) in enumerate(chop_sequence(seq, spec, rng), 1):
                        cid = f"{base}.{n}"
                        out.write(f">{cid}\n".encode())
                        write_wrapped(out, seq[start:end], line_width)
                        if tab:
                            tab.write(
                                f"{cid}\t{Path(str(path)).name}\t{ident}\t{start}\t{end}"
                                f"\t{end - start}\n"
                            )
                        n_contigs += 1
                        n_bases += end - start
        finally:
            out.close()
            if tab:
                tab.close()
        record["n_rows"] = n_contigs
    return {"records": n_records, "contigs": n_contigs, "bases": n_bases}


class _Named:
    """A file being written whose errors name it: ``write()`` and ``close()`` raise
    OSError without a file name (a full disk), so they are turned into one clear line."""

    def __init__(self, fh: IO[Any], name: Path):
        self.fh = fh
        self.name = name

    def write(self, data: Any) -> None:
        with naming_oserrors(self.name):
            self.fh.write(data)

    def close(self) -> None:
        with naming_oserrors(self.name):
            self.fh.close()
