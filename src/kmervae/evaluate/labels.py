"""Labels per contig id (genome, species, genus, …) and clusterings, read from TSV files.

A labels file is a TSV with a header: the first column holds the contig id (any name, e.g.
``id`` or ``contig_id``), every other column one rank (``genome``, ``species``, ``genus``,
``family``, ``phylum`` …). An empty cell, ``NA``, ``-`` or ``unknown`` is a missing label. A
clustering file is a TSV of id and cluster (a header line is optional).
"""

from __future__ import annotations

import csv
import logging
from dataclasses import dataclass, field
from pathlib import Path

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


def read_labels(path: str | Path, ranks: list[str] | None = None) -> LabelTable:
    """Read a labels TSV; ``ranks`` picks columns (default: every column after the id).

    Raises
    ------
    InputError
        No such file, no header, a rank that is not a column, a repeated id.
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such labels file")
    with open(path, newline="") as fh:
        reader = csv.reader(fh, delimiter="\t")
        header = next(reader, None)
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
        for line_no, row in enumerate(reader, 2):
            if not row or not row[0].strip():
                continue
            ident = row[0].strip()
            if ident in by_id:
                raise InputError(f"{path}: line {line_no}: id {ident!r} repeats an earlier line")
            values = []
            for i in picks:
                value = row[i].strip() if i < len(row) else ""
                values.append(None if value.lower() in MISSING else value)
            by_id[ident] = tuple(values)
    if not by_id:
        raise InputError(f"{path}: no labelled ids")
    return LabelTable(path, list(chosen), by_id)


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


def read_clustering(path: str | Path) -> dict[str, str]:
    """id -> cluster name from a two-column TSV.

    Accepts ``id<TAB>cluster`` (kmervae, MetaBAT/SemiBin tables) and VAMB's
    ``clustername<TAB>contigname``: the order is taken from a header line when there is one
    (``contig_id``/``id``/``contigname`` … and ``cluster``/``clustername``/``bin``), otherwise
    from the data (the id column is the one whose values never repeat).

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
    with open(path, newline="") as fh:
        for line_no, row in enumerate(csv.reader(fh, delimiter="\t"), 1):
            if not row or not row[0].strip():
                continue
            if len(row) < 2:
                raise InputError(f"{path}: line {line_no}: expected id<TAB>cluster")
            a, b = row[0].strip(), row[1].strip()
            if not pairs and swap is None:
                head = (a.lower(), b.lower())
                if head[0] in _ID_HEADERS and head[1] in _CLUSTER_HEADERS:
                    swap = False
                    continue
                if head[0] in _CLUSTER_HEADERS and head[1] in _ID_HEADERS:
                    swap = True
                    continue
            pairs.append((line_no, a, b))
    if not pairs:
        raise InputError(f"{path}: no clustered ids")
    if swap is None:
        firsts = {a for _, a, _ in pairs}
        seconds = {b for _, _, b in pairs}
        swap = len(firsts) < len(pairs) and len(seconds) == len(pairs)
    out: dict[str, str] = {}
    for line_no, a, b in pairs:
        ident, cluster = (b, a) if swap else (a, b)
        if out.setdefault(ident, cluster) != cluster:
            raise InputError(
                f"{path}: line {line_no}: id {ident!r} is in two clusters "
                f"({out[ident]!r} and {cluster!r})"
            )
    return out
