"""The points of a map that the report draws, and what each one's tooltip says.

A map may hold millions of contigs: the report draws at most ``max_points`` of them (a
seeded random sample beyond that) and, for such a map, an image of the density of all of
them, aggregated by datashader block by block from the memory-mapped coordinates. Memory
is the sample plus the canvas, whatever the map's size: ids, clusters and samples are read
as streams, keeping only the drawn contigs'.
"""

from __future__ import annotations

import csv
import hashlib
import io
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kmervae.errors import InputError
from kmervae.viz.maps import MapData, axis_names, select_ids

log = logging.getLogger(__name__)

#: pixels per side of the density image
DENSITY_CANVAS = 700


@dataclass
class MapPoints:
    """The drawn points of a map.

    Attributes
    ----------
    rows : int64 (n,) ascending rows of the map drawn (all rows when not sampled).
    x, y : float32 (n,) coordinates.
    ids : the contigs.
    lengths : int64 (n,), -1 where unknown.
    gc : float32 (n,) G+C fraction, NaN where unknown.
    sampled : whether ``rows`` is a sample of the map.
    """

    rows: np.ndarray
    x: np.ndarray
    y: np.ndarray
    ids: list[str]
    lengths: np.ndarray
    gc: np.ndarray
    sampled: bool

    @property
    def rows_sha256(self) -> str:
        """SHA-256 of the drawn rows (int64, little-endian): the same seed, the same rows."""
        return hashlib.sha256(np.ascontiguousarray(self.rows, "<i8").tobytes()).hexdigest()


def draw_rows(n: int, max_points: int, seed: int) -> np.ndarray | None:
    """The rows to draw: None for all of them when ``n <= max_points``, else a seeded
    sample of ``max_points`` rows, int64 ascending."""
    if max_points < 1:
        raise ValueError("max_points must be at least 1")
    if n <= max_points:
        return None
    rng = np.random.default_rng(seed)
    return np.sort(rng.choice(n, size=max_points, replace=False)).astype(np.int64)


def map_points(map_data: MapData, max_points: int, seed: int) -> MapPoints:
    """The points of ``map_data`` to draw: at most ``max_points``, read from the
    memory-mapped arrays."""
    n = map_data.n_rows
    rows = draw_rows(n, max_points, seed)
    sampled = rows is not None
    take: Any = slice(None) if rows is None else rows
    xy = np.asarray(map_data.coordinates[take], dtype=np.float32)
    ids = [i for block in select_ids(map_data.iter_ids(), rows) for i in block]
    if len(ids) != len(xy):
        raise InputError(f"{map_data.ids_path}: {len(ids)} ids for {len(xy)} drawn rows")
    return MapPoints(
        rows=np.arange(n, dtype=np.int64) if rows is None else rows,
        x=np.ascontiguousarray(xy[:, 0]),
        y=np.ascontiguousarray(xy[:, 1]),
        ids=ids,
        lengths=np.asarray(map_data.lengths[take], dtype=np.int64),
        gc=np.asarray(map_data.gc[take], dtype=np.float32),
        sampled=sampled,
    )


# -------------------------------------------------------------------------------- tooltips


def clusters_of(file: Path, fmt: str, wanted: set[str]) -> dict[str, str]:
    """id -> cluster of the ``wanted`` ids, streamed from a cluster folder's TSV (``fmt``:
    ``kmervae`` is ``contig_id<TAB>cluster``, ``vamb`` ``clustername<TAB>contigname``; the
    first line is the header). Only the wanted ids are kept."""
    out: dict[str, str] = {}
    swap = fmt == "vamb"
    with open(file, newline="", encoding="utf-8", errors="replace") as fh:
        reader = csv.reader(fh, delimiter="\t")
        next(reader, None)
        for line_no, row in enumerate(reader, 2):
            if not row or row[0].startswith("#"):
                continue
            if len(row) < 2:
                raise InputError(f"{file}: line {line_no}: expected two tab-separated columns")
            ident, cluster = (row[1], row[0]) if swap else (row[0], row[1])
            if ident in wanted:
                out[ident] = cluster
    return out


def samples_from_table(path: Path, wanted: set[str]) -> dict[str, str]:
    """id -> "sample (group)" of the ``wanted`` ids, from a samples TSV that
    :func:`kmervae.viz.compare.read_samples` has checked (header: the id first, ``sample``
    and ``group`` columns)."""
    out: dict[str, str] = {}
    with open(path, encoding="utf-8", errors="replace") as fh:
        header = [h.strip().lower() for h in fh.readline().rstrip("\r\n").split("\t")]
        i_sample, i_group = header.index("sample"), header.index("group")
        for line in fh:
            row = line.rstrip("\r\n").split("\t")
            ident = row[0].strip()
            if ident in wanted and len(row) > max(i_sample, i_group):
                out[ident] = f"{row[i_sample].strip()} ({row[i_group].strip()})"
    return out


def samples_from_embeddings(emb: Any, wanted: set[str]) -> dict[str, str]:
    """id -> source file name of the ``wanted`` ids, from an embedding store's ``sources.npy``
    (an index into its dataset's sources: the names its manifest records, else those of
    the dataset itself where it can still be opened). Empty without the column."""
    if "sources" not in emb.columns:
        return {}
    names = list(emb.manifest.get("dataset", {}).get("sources", []) or [])
    column = emb.column("sources")
    found: dict[str, int] = {}
    start = 0
    for block in emb.iter_ids():
        stop = start + len(block)
        hits = [(ident, i) for i, ident in enumerate(block) if ident in wanted]
        if hits:
            codes = np.asarray(column[start:stop])
            found.update((ident, int(codes[i])) for ident, i in hits)
        start = stop
    if found and max(found.values()) >= len(names):
        names = _dataset_sources(emb) or names
    names = [Path(str(name)).name for name in names]  # the file, not where it was then
    return {
        ident: names[code] if 0 <= code < len(names) else f"source {code}"
        for ident, code in found.items()
        if code >= 0
    }


def _dataset_sources(emb: Any) -> list[str]:
    """Every source name of the dataset an embedding store was made from (its manifest
    records only the first 50), or [] when it cannot be opened."""
    from kmervae.errors import KmervaeError
    from kmervae.io.dataset import open_dataset

    path = emb.manifest.get("dataset", {}).get("path")
    if not path:
        return []
    try:
        return open_dataset(path).source_names
    except (KmervaeError, OSError):
        return []


# -------------------------------------------------------------------------------- density


def density_png(map_data: MapData, title: str) -> bytes:
    """A PNG of the density of all the points of ``map_data``, on black."""
    from kmervae.viz import render

    extent = render.square_extent(map_data.coordinates)
    rgba = render.shade_density(map_data.coordinates, extent, size=DENSITY_CANVAS)
    plt = render.pyplot()
    with plt.rc_context(render.STYLE):
        fig, ax = plt.subplots(figsize=(7.0, 6.6))
        try:
            ax.set_facecolor("black")
            ax.imshow(rgba, origin="lower", extent=extent, interpolation="nearest")
            ax.set_aspect("equal")
            x_label, y_label = axis_names(map_data.method)
            ax.set_xlabel(x_label)
            ax.set_ylabel(y_label)
            ax.set_title(title)
            fig.tight_layout()
            buffer = io.BytesIO()
            fig.savefig(buffer, format="png", dpi=100)
        finally:
            plt.close(fig)
    return buffer.getvalue()
