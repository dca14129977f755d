"""Two groups of samples on one map: density difference, overlay, per-cluster composition.

A comparison (a directory, written under a temporary name and renamed when complete)::

    manifest.json               format "kmervae-compare", the map (path, rows, method), the
                                samples file (path, SHA-256), the groups A and B (names,
                                samples, contigs listed and mapped), bins, the clusters file
                                (path, SHA-256) or null, files written, provenance
    density_difference.png/.pdf normalised 2-D histograms of the map coordinates, B minus A
    overlay.png/.pdf            A in cyan, B in yellow, added on black: overlap reads green
    composition.tsv             with clusters: cluster, n_a, n_b, fraction_a, fraction_b,
                                share_a (a header line first; largest clusters first)
    composition.png/.pdf        stacked bars of the largest clusters
    kmervae.log                 the log of the command (CLI)

A samples file is a TSV with a header naming the columns ``contig`` (or ``contig_id`` /
``id``; the first column), ``sample`` and ``group``, one line per contig.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from kmervae._version import __version__
from kmervae.errors import InputError, KmervaeError
from kmervae.io.atomic import check_writable, remove_path, replace_path, temporary_name
from kmervae.provenance import file_sha256
from kmervae.viz.maps import MapData, axis_names
from kmervae.viz.render import (
    CANVAS,
    overlay_rgb,
    plot_composition,
    plot_density_difference,
    plot_overlay,
    square_extent,
)

log = logging.getLogger(__name__)

FORMAT_NAME = "kmervae-compare"
SCHEMA_VERSION = 1
ID_COLUMNS = ("contig", "contig_id", "id")
#: the composition row of contigs that are in no cluster
UNCLUSTERED = "(unclustered)"
FORMATS = ("png", "pdf")
COMPOSITION_COLUMNS = ("cluster", "n_a", "n_b", "fraction_a", "fraction_b", "share_a")


@dataclass
class SampleTable:
    """A samples file: each contig's group, and per group its samples and contig count.

    Attributes
    ----------
    path : the file.
    group_of : contig id -> group index.
    groups : group names, by index (in order of first appearance).
    contigs : contigs listed per group index.
    samples : sample names per group index.
    """

    path: Path
    group_of: dict[str, int]
    groups: list[str]
    contigs: list[int] = field(default_factory=list)
    samples: list[set[str]] = field(default_factory=list)

    def index(self, group: str) -> int:
        """The index of ``group``; an InputError naming the groups there are if absent."""
        try:
            return self.groups.index(group)
        except ValueError:
            names = sorted(self.groups)
            listed = ", ".join(names[:20]) + (" …" if len(names) > 20 else "")
            raise InputError(
                f"{self.path}: no contig is in group {group!r} (groups: {listed})"
            ) from None


def read_samples(path: str | Path) -> SampleTable:
    """Read a samples TSV: header ``contig  sample  group`` (any column order after the id;
    ``contig_id`` or ``id`` also name the id column), one line per contig.

    Raises
    ------
    InputError
        No such file, an empty file, a header without these columns, a short line, an empty
        id or group, a contig listed twice, no contig at all (each names file and line).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such samples file")
    group_of: dict[str, int] = {}
    groups: list[str] = []
    index: dict[str, int] = {}
    contigs: list[int] = []
    samples: list[set[str]] = []
    with open(path, encoding="utf-8", errors="replace") as fh:
        header_line = fh.readline()
        if not header_line.strip():
            raise InputError(f"{path}: empty (expected a header line: contig<TAB>sample<TAB>group)")
        header = [h.strip().lower() for h in header_line.rstrip("\r\n").split("\t")]
        if header[0] not in ID_COLUMNS or "sample" not in header or "group" not in header:
            raise InputError(
                f"{path}: line 1: expected a header with the columns contig (or contig_id, "
                f"id; first), sample and group, found: {', '.join(header)}"
            )
        i_sample, i_group = header.index("sample"), header.index("group")
        width = max(i_sample, i_group) + 1
        for line_no, line in enumerate(fh, 2):
            row = line.rstrip("\r\n").split("\t")
            if not line.strip():
                continue
            if len(row) < width:
                raise InputError(
                    f"{path}: line {line_no}: expected {len(header)} tab-separated columns "
                    f"({', '.join(header)}), found {len(row)}"
                )
            ident, sample, group = row[0].strip(), row[i_sample].strip(), row[i_group].strip()
            if not ident or not group:
                raise InputError(f"{path}: line {line_no}: empty contig id or group")
            if ident in group_of:
                raise InputError(f"{path}: line {line_no}: contig {ident!r} is listed twice")
            g = index.get(group)
            if g is None:
                g = index[group] = len(groups)
                groups.append(group)
                contigs.append(0)
                samples.append(set())
            group_of[ident] = g
            contigs[g] += 1
            samples[g].add(sample)
    if not group_of:
        raise InputError(f"{path}: no contigs (only a header line)")
    return SampleTable(path, group_of, groups, contigs, samples)


@dataclass
class GroupRows:
    """Which map rows belong to group A or B.

    Attributes
    ----------
    codes : int8 (N,): 1 for A, 2 for B, 0 for neither.
    n_matched : map rows whose id is in the samples file (any group).
    n_missing : ids of the samples file that are not in the map.
    clusters : with a clustering, the cluster of each row of A or B (None: in no cluster),
        in row order of ``np.flatnonzero(codes)``.
    """

    codes: np.ndarray
    n_matched: int
    n_missing: int
    clusters: list[str | None] | None = None

    @property
    def n_a(self) -> int:
        return int((self.codes == 1).sum())

    @property
    def n_b(self) -> int:
        return int((self.codes == 2).sum())


def assign_groups(
    ids: Iterable[list[str]],
    n_rows: int,
    table: SampleTable,
    a: str,
    b: str,
    clusters: dict[str, str] | None = None,
) -> GroupRows:
    """Mark the map rows of groups ``a`` and ``b`` (one pass over the map's ids).

    Raises
    ------
    InputError
        An unknown group, no id of the samples file in the map, a group with no contig in
        the map. Ids of the samples file that are not in the map are counted and logged.
    """
    code_a, code_b = table.index(a), table.index(b)
    lookup = {code_a: 1, code_b: 2}
    codes = np.zeros(n_rows, np.int8)
    found: list[str | None] | None = [] if clusters is not None else None
    matched = 0
    row = 0
    for block in ids:
        for ident in block:
            g = table.group_of.get(ident)
            if g is not None:
                matched += 1
                mark = lookup.get(g, 0)
                if mark:
                    codes[row] = mark
                    if found is not None and clusters is not None:
                        found.append(clusters.get(ident))
            row += 1
    missing = len(table.group_of) - matched
    if matched == 0:
        raise InputError(
            f"{table.path}: none of its {len(table.group_of):,} contigs is in the map "
            f"(first contig {next(iter(table.group_of))!r}); do the ids match?"
        )
    result = GroupRows(codes, matched, missing, found)
    for name, mapped, listed in ((a, result.n_a, code_a), (b, result.n_b, code_b)):
        if mapped == 0:
            raise InputError(
                f"group {name!r}: none of its {table.contigs[listed]:,} contigs in "
                f"{table.path} is in the map"
            )
    if missing:
        log.warning(
            "%d of the %d contigs of %s are not in the map (ignored)",
            missing,
            len(table.group_of),
            table.path,
        )
    return result


def density_histogram(coords: np.ndarray, extent: tuple[float, ...], bins: int) -> np.ndarray:
    """2-D histogram of ``coords`` (float (n, 2)) over ``extent`` (x0, x1, y0, y1), normalised
    to sum 1 (all zeros for no point).

    Returns
    -------
    float64 (bins, bins): row = y bin (lowest first), column = x bin, as ``imshow`` with
    ``origin="lower"`` shows it. A point on the upper edge falls in the last bin.
    """
    x0, x1, y0, y1 = extent
    counts = np.zeros(bins * bins, np.int64)
    for s in range(0, len(coords), 1 << 20):
        xy = np.asarray(coords[s : s + (1 << 20)], dtype=np.float64)
        ix = np.clip(np.floor((xy[:, 0] - x0) / (x1 - x0) * bins), 0, bins - 1).astype(np.int64)
        iy = np.clip(np.floor((xy[:, 1] - y0) / (y1 - y0) * bins), 0, bins - 1).astype(np.int64)
        counts += np.bincount(iy * bins + ix, minlength=bins * bins)
    total = counts.sum()
    hist = counts.reshape(bins, bins).astype(np.float64)
    return hist / total if total else hist


def density_difference(
    coords_a: np.ndarray, coords_b: np.ndarray, extent: tuple[float, ...], bins: int
) -> np.ndarray:
    """B minus A of :func:`density_histogram`: float64 (bins, bins), sums to 0; positive
    where B is the denser group."""
    return density_histogram(coords_b, extent, bins) - density_histogram(coords_a, extent, bins)


def composition_table(clusters: Sequence[str | None], groups: np.ndarray) -> list[dict[str, Any]]:
    """Per cluster: contigs of A and B, the fraction of each group's mapped contigs, and A's
    share of the cluster.

    Parameters
    ----------
    clusters : the cluster of each contig of A or B (None: in no cluster).
    groups : int (same length): 1 for A, 2 for B.

    Returns
    -------
    Rows {cluster, n_a, n_b, fraction_a, fraction_b, share_a}, largest (n_a + n_b) first,
    ties by name; contigs in no cluster last, as ``(unclustered)``.
    """
    groups = np.asarray(groups)
    total_a, total_b = int((groups == 1).sum()), int((groups == 2).sum())
    count_a = Counter(c for c, g in zip(clusters, groups.tolist(), strict=True) if g == 1)
    count_b = Counter(c for c, g in zip(clusters, groups.tolist(), strict=True) if g == 2)
    names = set(count_a) | set(count_b)
    named = sorted(
        (c for c in names if c is not None), key=lambda c: (-(count_a[c] + count_b[c]), c)
    )
    order: list[str | None] = [*named, *([None] if None in names else [])]
    rows = []
    for c in order:
        n_a, n_b = count_a[c], count_b[c]
        rows.append(
            {
                "cluster": UNCLUSTERED if c is None else c,
                "n_a": n_a,
                "n_b": n_b,
                "fraction_a": n_a / total_a if total_a else 0.0,
                "fraction_b": n_b / total_b if total_b else 0.0,
                "share_a": n_a / (n_a + n_b),
            }
        )
    return rows


def write_composition_tsv(rows: Sequence[dict[str, Any]], path: Path) -> None:
    """The composition table as TSV, a header line first (pandas reads it as is)."""
    with open(path, "w", encoding="utf-8") as fh:
        fh.write("\t".join(COMPOSITION_COLUMNS) + "\n")
        for r in rows:
            fh.write(
                f"{r['cluster']}\t{r['n_a']}\t{r['n_b']}\t{r['fraction_a']:.6g}\t"
                f"{r['fraction_b']:.6g}\t{r['share_a']:.6g}\n"
            )


def parse_formats(text: str) -> tuple[str, ...]:
    """``png,pdf`` -> ("png", "pdf"); a KmervaeError for anything else."""
    chosen = tuple(dict.fromkeys(f.strip().lower() for f in text.split(",") if f.strip()))
    bad = [f for f in chosen if f not in FORMATS]
    if bad or not chosen:
        raise KmervaeError(f"formats are png and/or pdf (comma-separated), got {text!r}")
    return chosen


@dataclass
class CompareSummary:
    output: Path
    n_a: int
    n_b: int
    files: list[str]
    seconds: float


def compare_groups(
    map_data: MapData,
    table: SampleTable,
    a: str,
    b: str,
    output: str | Path,
    *,
    clusters: dict[str, str] | None = None,
    clusters_path: Path | None = None,
    bins: int = 200,
    formats: Sequence[str] = FORMATS,
    dpi: int = 300,
    top: int = 30,
    how: str = "eq_hist",
    provenance: dict[str, Any] | None = None,
    overwrite: bool = False,
    on_folder: Callable[[Path], None] | None = None,
) -> CompareSummary:
    """Compare groups ``a`` and ``b`` of ``table`` on ``map_data``; write the folder
    ``output`` (see the module docstring). ``how`` scales each group's counts in the
    overlay (``eq_hist``, ``log``, ``linear``).

    Raises
    ------
    KmervaeError / InputError
        ``a`` equal to ``b``, bad bins or formats, an existing output (without
        ``overwrite``), and the errors of :func:`assign_groups`; all before any output.
    """
    started = time.perf_counter()
    output = Path(output)
    if a == b:
        raise KmervaeError(f"groups a and b are both {a!r}: compare two different groups")
    if not 2 <= bins <= 10_000:
        raise KmervaeError(f"bins must be between 2 and 10000, got {bins}")
    formats = parse_formats(",".join(formats))
    check_writable(output, overwrite)
    rows = assign_groups(map_data.iter_ids(), map_data.n_rows, table, a, b, clusters)
    n_a, n_b = rows.n_a, rows.n_b
    coords = map_data.coordinates
    extent = square_extent(coords)
    picked = np.flatnonzero(rows.codes)
    group_of_picked = rows.codes[picked]
    xy = np.asarray(coords[picked])
    coords_a, coords_b = xy[group_of_picked == 1], xy[group_of_picked == 2]
    del xy
    names, counts, axes = (a, b), (n_a, n_b), axis_names(map_data.method)

    tmp = temporary_name(output)
    remove_path(tmp)
    tmp.mkdir()
    try:
        if on_folder is not None:
            on_folder(tmp)
        log.info(
            "%s: %d contigs listed, %d of them in the map of %d rows, %d not in it",
            table.path,
            len(table.group_of),
            rows.n_matched,
            map_data.n_rows,
            rows.n_missing,
        )
        log.info("group %s: %d contigs on the map; group %s: %d", a, n_a, b, n_b)
        written: list[Path] = []
        diff = density_difference(coords_a, coords_b, extent, bins)
        written += plot_density_difference(
            tmp / "density_difference",
            diff,
            extent,
            names=names,
            counts=counts,
            axis_labels=axes,
            formats=formats,
            dpi=dpi,
        )
        rgb = overlay_rgb(coords_a, coords_b, extent, size=CANVAS, how=how)
        written += plot_overlay(
            tmp / "overlay",
            rgb,
            extent,
            names=names,
            counts=counts,
            axis_labels=axes,
            formats=formats,
            dpi=dpi,
        )
        n_clusters = None
        if rows.clusters is not None:
            table_rows = composition_table(rows.clusters, group_of_picked)
            n_clusters = sum(1 for r in table_rows if r["cluster"] != UNCLUSTERED)
            write_composition_tsv(table_rows, tmp / "composition.tsv")
            written.append(tmp / "composition.tsv")
            written += plot_composition(
                tmp / "composition", table_rows, names=names, top=top, formats=formats, dpi=dpi
            )
            unclustered = sum(
                r["n_a"] + r["n_b"] for r in table_rows if r["cluster"] == UNCLUSTERED
            )
            if unclustered:
                log.warning("%d contigs of the two groups are in no cluster", unclustered)
        seconds = time.perf_counter() - started
        manifest = {
            "format": FORMAT_NAME,
            "schema_version": SCHEMA_VERSION,
            "kmervae_version": __version__,
            "map": {
                "path": str(map_data.path.resolve()),
                "n_rows": map_data.n_rows,
                "method": map_data.method,
            },
            "samples": {
                "path": str(table.path.resolve()),
                "sha256": file_sha256(table.path),
                "contigs": len(table.group_of),
                "contigs_in_map": rows.n_matched,
                "contigs_not_in_map": rows.n_missing,
                "groups": len(table.groups),
            },
            "groups": {
                key: {
                    "name": name,
                    "samples": sorted(table.samples[table.index(name)]),
                    "contigs_listed": table.contigs[table.index(name)],
                    "contigs_mapped": count,
                }
                for key, name, count in (("a", a, n_a), ("b", b, n_b))
            },
            "density_difference": "b minus a, each group's histogram normalised to sum 1",
            "bins": bins,
            "extent": list(extent),
            "overlay_scaling": how,
            "clusters": None
            if clusters_path is None
            else {
                "path": str(Path(clusters_path).resolve()),
                "sha256": file_sha256(clusters_path),
                "clusters_with_members": n_clusters,
            },
            "files": sorted(p.name for p in written),
            "seconds": round(seconds, 3),
            "provenance": provenance or {},
        }
        (tmp / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
        replace_path(tmp, output)
    except BaseException:
        remove_path(tmp)
        raise
    log.info("compared %s and %s in %.1f s: %s", a, b, seconds, output)
    return CompareSummary(output, n_a, n_b, sorted(p.name for p in written), seconds)
