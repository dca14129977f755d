"""Labels per contig id (genome, species, genus, …) and clusterings, read from TSV files.

A labels file is a TSV with a header: the first column holds the contig id (any name, e.g.
``id`` or ``contig_id``), every other column one rank (``genome``, ``species``, ``genus``,
``family``, ``phylum`` …). An empty cell, ``NA``, ``-`` or ``unknown`` is a missing label. A
clustering file is a TSV of id and cluster (a header line is optional).

A ``kmervae chop --table`` TSV (contig id, genome ``file``, …) becomes a labels file when
joined with a genome catalogue (:class:`LabelsWithCatalog`): a TSV with a ``file`` column
and one column per rank (``organism`` serves as ``species`` and ``phylum/domain`` as
``phylum`` when the catalogue has no column of that name); the ``genome`` of a contig is its
file's name without FASTA and compression suffixes.

Lines before the header that start with ``#`` and hold no tab (the comment line of older
kmervae outputs) are skipped; a header line that starts with ``#`` loses the ``#``.
"""

from __future__ import annotations

import csv
import logging
import os
from collections.abc import Callable, Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

import numpy as np

from kmervae.errors import InputError

log = logging.getLogger(__name__)

MISSING = frozenset({"", "na", "nan", "none", "-", "unknown"})
#: the ranks the protocols know, most specific first
RANKS = ("genome", "species", "genus", "family", "phylum")


@dataclass
class LabelTable:
    """Labels of a TSV file: ``ranks`` (column names) and id -> one label (or None) per rank."""

    path: Path
    ranks: list[str]
    by_id: dict[str, tuple[str | None, ...]]


@dataclass
class AlignedLabels:
    """Labels of a dataset's rows as integer codes.

    Attributes
    ----------
    codes : int64 (n x len(ranks)); -1 where the label is missing.
    ranks : rank names, the columns of ``codes``.
    vocab : per rank, label -> code (shared by every table aligned with the same vocab).
    n_unlabelled : rows whose id is absent from the labels file.
    n_extra : ids of the labels file that are not in the dataset.
    """

    codes: np.ndarray
    ranks: list[str]
    vocab: dict[str, dict[str, int]]
    n_unlabelled: int = 0
    n_extra: int = 0
    missing_per_rank: dict[str, int] = field(default_factory=dict)

    def column(self, rank: str) -> np.ndarray:
        try:
            return self.codes[:, self.ranks.index(rank)]
        except ValueError:
            raise InputError(
                f"rank {rank!r} is not in the labels (ranks: {', '.join(self.ranks)})"
            ) from None

    def report(self) -> dict[str, object]:
        return {
            "rows_without_labels": self.n_unlabelled,
            "label_ids_not_in_dataset": self.n_extra,
            "missing_per_rank": dict(self.missing_per_rank),
        }


@dataclass(frozen=True)
class LabelsWithCatalog(os.PathLike[str]):
    """A ``chop --table`` TSV (``table``) to be joined with a genome catalogue
    (``catalog``) on the genome file: what ``--labels TABLE --catalog CATALOG`` names. It is
    path-like (the table), so it goes wherever a labels path goes."""

    table: Path
    catalog: Path

    def __fspath__(self) -> str:
        return str(self.table)

    def __str__(self) -> str:
        return str(self.table)


def _rows(fh: TextIO) -> Iterator[tuple[int, list[str]]]:
    """(line number, cells) of a TSV, without the ``#`` comment lines before its header (a
    ``#`` line with a tab is the header; the ``#`` goes)."""
    header_seen = False
    for line_no, row in enumerate(csv.reader(fh, delimiter="\t"), 1):
        if not header_seen and row and row[0].startswith("#"):
            if len(row) < 2:
                continue
            row = [row[0][1:].lstrip(), *row[1:]]
        header_seen = header_seen or bool(row)
        yield line_no, row


def read_labels(
    path: str | Path | LabelsWithCatalog,
    ranks: list[str] | None = None,
    *,
    ids: Collection[str] | None = None,
) -> LabelTable:
    """Read a labels TSV; ``ranks`` picks columns (default: every column after the id).
    A :class:`LabelsWithCatalog` is read by :func:`read_catalog_labels`.

    ``ids`` (a set, for speed) keeps only the labels of those ids: the file is streamed,
    so memory is theirs only; none of them labelled is then not an error (the caller knows
    what the ids are), and only a repeat of a kept id is.

    Raises
    ------
    InputError
        No such file, no header, a rank that is not a column, a repeated id.
    """
    if isinstance(path, LabelsWithCatalog):
        table = read_catalog_labels(path.table, path.catalog, ranks)
        if ids is not None:
            table.by_id = {i: v for i, v in table.by_id.items() if i in ids}
        return table
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such labels file")
    with open(path, newline="") as fh:
        reader = _rows(fh)
        header = next((row for _, row in reader if row), None)
        if not header or len(header) < 2:
            raise InputError(f"{path}: expected a TSV header: id, then one column per rank")
        columns = [h.strip() for h in header[1:]]
        chosen = ranks or columns
        unknown = [r for r in chosen if r not in columns]
        if unknown:
            raise InputError(
                f"{path}: no column for rank(s) {', '.join(unknown)} (columns: "
                f"{', '.join(columns)})"
            )
        picks = [columns.index(r) + 1 for r in chosen]
        by_id: dict[str, tuple[str | None, ...]] = {}
        for line_no, row in reader:
            if not row or not row[0].strip():
                continue
            ident = row[0].strip()
            if ids is not None and ident not in ids:
                continue
            if ident in by_id:
                raise InputError(f"{path}: line {line_no}: id {ident!r} repeats an earlier line")
            values = []
            for i in picks:
                value = row[i].strip() if i < len(row) else ""
                values.append(None if value.lower() in MISSING else value)
            by_id[ident] = tuple(values)
    if not by_id and ids is None:
        raise InputError(f"{path}: no labelled ids")
    return LabelTable(path, list(chosen), by_id)


#: catalogue columns that stand for a rank when the catalogue has no column of that name
CATALOG_ALIASES = {"organism": "species", "phylum/domain": "phylum"}


def _read_table(path: Path, what: str) -> tuple[list[str], list[tuple[int, list[str]]]]:
    """(header, data rows with their line numbers) of a TSV with a header line."""
    if not path.is_file():
        raise InputError(f"{path}: no such {what}")
    with open(path, newline="") as fh:
        reader = _rows(fh)
        header = next((row for _, row in reader if row), None)
        if not header:
            raise InputError(f"{path}: empty (expected a header line)")
        rows = [(n, row) for n, row in reader if row and row[0].strip()]
    return [h.strip() for h in header], rows


def read_catalog(path: str | Path) -> dict[str, dict[str, str | None]]:
    """A genome catalogue: genome (file stem) -> rank -> label (None where missing).

    Ranks are the catalogue's columns other than ``file``, plus :data:`CATALOG_ALIASES`.

    Raises
    ------
    InputError
        No such file, no ``file`` column, a genome listed twice.
    """
    from kmervae.io.fasta import file_stem

    path = Path(path)
    header, rows = _read_table(path, "genome catalogue")
    if "file" not in header:
        raise InputError(f"{path}: no 'file' column to join on (columns: {', '.join(header)})")
    i_file = header.index("file")
    names = list(header)
    for column, rank in CATALOG_ALIASES.items():
        if column in header and rank not in header:
            names.append(rank)
    out: dict[str, dict[str, str | None]] = {}
    for line_no, row in rows:
        cells = [c.strip() for c in row] + [""] * (len(header) - len(row))
        genome = file_stem(cells[i_file]) if i_file < len(cells) else ""
        if not genome:
            continue
        if genome in out:
            raise InputError(f"{path}: line {line_no}: genome {genome!r} is listed twice")
        values = dict(zip(header, cells, strict=False))
        for column, rank in CATALOG_ALIASES.items():
            if rank not in header and column in values:
                values[rank] = values[column]
        out[genome] = {
            n: None if values.get(n, "").lower() in MISSING else values.get(n)
            for n in names
            if n != "file"
        }
    if not out:
        raise InputError(f"{path}: no genome listed")
    return out


def read_catalog_labels(
    table: str | Path, catalog: str | Path, ranks: list[str] | None = None
) -> LabelTable:
    """Labels of the contigs of a ``chop --table`` TSV, joined with a genome catalogue on
    the genome file (compared without FASTA and compression suffixes).

    Ranks: ``genome`` (the file stem) and the catalogue's columns; default: those of
    :data:`RANKS` present. A contig whose genome is not in the catalogue keeps its
    ``genome`` label only.

    Raises
    ------
    InputError
        No such file, no ``file`` column, a rank that neither has, a repeated contig id,
        not one genome of the table in the catalogue.
    """
    from kmervae.io.fasta import file_stem

    table, catalog = Path(table), Path(catalog)
    genomes = read_catalog(catalog)
    header, rows = _read_table(table, "chop table")
    if len(header) < 2 or "file" not in header[1:]:
        raise InputError(
            f"{table}: no 'file' column to join with {catalog} (columns: {', '.join(header)}); "
            "expected the table of pieces that chop writes"
        )
    i_file = header.index("file")
    available = ["genome", *(n for n in next(iter(genomes.values())) if n != "genome")]
    chosen = list(ranks) if ranks else [r for r in RANKS if r in available]
    unknown = [r for r in chosen if r not in available]
    if unknown or not chosen:
        raise InputError(
            f"{table} with {catalog}: no column for rank(s) {', '.join(unknown) or 'any'} "
            f"(ranks: {', '.join(available)})"
        )
    by_id: dict[str, tuple[str | None, ...]] = {}
    absent: set[str] = set()
    seen: set[str] = set()
    for line_no, row in rows:
        ident = row[0].strip()
        if ident in by_id:
            raise InputError(f"{table}: line {line_no}: id {ident!r} repeats an earlier line")
        genome = file_stem(row[i_file].strip()) if i_file < len(row) else ""
        seen.add(genome)
        known = genomes.get(genome)
        if known is None:
            absent.add(genome)
            known = {}
        by_id[ident] = tuple((genome or None) if r == "genome" else known.get(r) for r in chosen)
    if not by_id:
        raise InputError(f"{table}: no contig ids")
    if absent == seen:
        raise InputError(
            f"{table}: none of its genomes is in {catalog} (first genome "
            f"{sorted(absent)[0]!r}, first catalogue genome {next(iter(genomes))!r})"
        )
    if absent:
        log.warning(
            "%d genome(s) of %s are not in %s (their contigs keep the genome label only): %s",
            len(absent),
            table,
            catalog,
            ", ".join(sorted(absent)[:5]) + (" …" if len(absent) > 5 else ""),
        )
    log.info("labels: %s joined with %s, ranks %s", table, catalog, ", ".join(chosen))
    return LabelTable(table, chosen, by_id)


def align_labels(
    table: LabelTable,
    ids: list[str],
    *,
    vocab: dict[str, dict[str, int]] | None = None,
    what: str = "dataset",
) -> AlignedLabels:
    """Codes of the labels of ``ids`` (a dataset's ids in row order).

    Missing labels are counted and logged, not fatal; a dataset none of whose ids is
    labelled is an error (the ids most likely do not match).

    Raises
    ------
    InputError
        Not one id of the dataset is in the labels file.
    """
    vocab = vocab if vocab is not None else {r: {} for r in table.ranks}
    for rank in table.ranks:
        vocab.setdefault(rank, {})
    codes = np.full((len(ids), len(table.ranks)), -1, np.int64)
    unlabelled = 0
    seen = 0
    for row, ident in enumerate(ids):
        values = table.by_id.get(ident)
        if values is None:
            unlabelled += 1
            continue
        seen += 1
        for j, (rank, value) in enumerate(zip(table.ranks, values, strict=True)):
            if value is not None:
                codes[row, j] = vocab[rank].setdefault(value, len(vocab[rank]))
    if ids and seen == 0:
        raise InputError(
            f"{table.path}: none of the {len(ids)} {what} ids has a label (first {what} id "
            f"{ids[0]!r}, first labelled id {next(iter(table.by_id))!r}); do the ids match?"
        )
    extra = len(table.by_id) - seen
    missing = {rank: int((codes[:, j] < 0).sum()) for j, rank in enumerate(table.ranks)}
    if unlabelled:
        log.warning(
            "%d of %d %s ids have no line in %s: scored as unlabelled",
            unlabelled,
            len(ids),
            what,
            table.path,
        )
    if extra:
        log.info("%d ids of %s are not in the %s (ignored)", extra, table.path, what)
    return AlignedLabels(codes, list(table.ranks), vocab, unlabelled, extra, missing)


#: header names of the id column and of the cluster column
_ID_HEADERS = frozenset({"id", "contig_id", "contig", "contigname", "contig_name", "sequence"})
_CLUSTER_HEADERS = frozenset({"cluster", "clustername", "cluster_name", "bin", "bin_id"})


def read_clustering(
    path: str | Path,
    ids: Collection[str] | Callable[[], Collection[str]] | None = None,
) -> dict[str, str]:
    """id -> cluster name from a two-column TSV.

    Accepts ``id<TAB>cluster`` (kmervae, MetaBAT/SemiBin tables) and VAMB's
    ``clustername<TAB>contigname``. The column order is taken from, in turn: a header line
    (``contig_id``/``id``/``contigname`` … and ``cluster``/``clustername``/``bin``); the
    contig ids ``ids`` (or what the callable returns, called only then): the column more of
    whose values are contig ids; the data (the id column is the one whose values never
    repeat). The order read is logged. ``#`` lines are skipped.

    Raises
    ------
    InputError
        No such file, a line with one column, an id in two clusters, no clustered id.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such clustering file")
    pairs: list[tuple[int, str, str]] = []
    swap: bool | None = None
    how = "its header"
    with open(path, newline="") as fh:
        for line_no, row in enumerate(csv.reader(fh, delimiter="\t"), 1):
            if not row or not row[0].strip() or (len(row) < 2 and row[0].startswith("#")):
                continue
            if len(row) < 2:
                raise InputError(f"{path}: line {line_no}: expected id<TAB>cluster")
            a, b = row[0].strip(), row[1].strip()
            if not pairs and swap is None:
                head = (a.lstrip("#").strip().lower(), b.lower())
                if head[0] in _ID_HEADERS and head[1] in _CLUSTER_HEADERS:
                    swap = False
                    continue
                if head[0] in _CLUSTER_HEADERS and head[1] in _ID_HEADERS:
                    swap = True
                    continue
            pairs.append((line_no, a, b))
    if not pairs:
        raise InputError(f"{path}: no clustered ids")
    if swap is None and ids is not None:
        known = ids() if callable(ids) else ids
        known = known if isinstance(known, set | frozenset | dict) else set(known)
        first = sum(a in known for _, a, _ in pairs)
        second = sum(b in known for _, _, b in pairs)
        if first != second:
            swap = second > first
            how = f"the contig ids ({max(first, second)} of its {len(pairs)} lines name one)"
    if swap is None:
        firsts = {a for _, a, _ in pairs}
        seconds = {b for _, _, b in pairs}
        swap = len(firsts) < len(pairs) and len(seconds) == len(pairs)
        how = "its values (the id column's never repeat)"
    order = "VAMB's clustername<TAB>contigname" if swap else "contig_id<TAB>cluster"
    log.info("%s: read as %s, by %s", path, order, how)
    out: dict[str, str] = {}
    for line_no, a, b in pairs:
        ident, cluster = (b, a) if swap else (a, b)
        if out.setdefault(ident, cluster) != cluster:
            raise InputError(
                f"{path}: line {line_no}: id {ident!r} is in two clusters "
                f"({out[ident]!r} and {cluster!r})"
            )
    return out
