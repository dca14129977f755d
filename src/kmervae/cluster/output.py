"""The folder ``kmervae cluster`` writes (built under a temporary name, renamed when whole)::

manifest.json        format "kmervae-clusters", schema version, the input (graph and its
                     store, map or embeddings), the request, the graph summary, one entry
                     per clustering (name, method, parameter, files, counts, GC spread),
                     bins, provenance
clusters.tsv         the first clustering (the consensus when one was asked for):
                     ``contig_id<TAB>cluster``, or VAMB's ``clustername<TAB>contigname``
clusters.stats.tsv   its per-cluster statistics (see :mod:`kmervae.cluster.clusters`)
clusters.NAME.tsv    with several clusterings (a sweep, a consensus), each of them, and
clusters.NAME.stats.tsv  its statistics (clusters.tsv is then a link to the first)
summary.tsv          one line per clustering: name, method, parameter, clusters,
                     clustered contigs, singletons, median GC spread, share within 5 pp
kmervae.log          the command's log
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kmervae._version import __version__
from kmervae.cluster.clusters import ClusterStats, cluster_stats, write_clusters
from kmervae.cluster.inputs import ClusterInput
from kmervae.cluster.run import Clustering, ClusterRequest
from kmervae.io.atomic import check_writable, remove_path, replace_path, temporary_name

FORMAT_NAME = "kmervae-clusters"
SCHEMA_VERSION = 1
SUMMARY_COLUMNS = (
    "name",
    "method",
    "parameter",
    "clusters",
    "clustered_contigs",
    "singletons",
    "median_gc_spread",
    "within_5pp",
)


def summary_row(stats: ClusterStats) -> dict[str, Any]:
    """Counts, median GC spread and share within 5 pp (clusters of two or more contigs, as
    ``kmervae evaluate clusters`` scores them)."""
    from kmervae.evaluate.clusters import spread_summary

    spread = spread_summary(stats.gc_spread, stats.size, stats.total_bp)
    median, within = spread["median"], spread["share_within"]
    return {
        "clusters": len(stats),
        "clustered_contigs": int(stats.size.sum()),
        "singletons": spread["singletons"],
        "median_gc_spread": None if median != median else median,
        "within_5pp": None if within != within else within,
    }


def write_cluster_folder(
    folder: Path,
    data: ClusterInput,
    clusterings: Sequence[Clustering],
    *,
    fmt: str = "kmervae",
) -> list[dict[str, Any]]:
    """Write the clusterings' files into ``folder`` (an existing, temporary folder); returns
    the manifest entries."""
    entries = []
    several = len(clusterings) > 1
    for number, clustering in enumerate(clusterings):
        stem = f"clusters.{clustering.name}" if several else "clusters"
        with open(folder / f"{stem}.tsv", "w", encoding="utf-8") as fh:
            write_clusters(fh, data.ids, clustering.labels, fmt)
        stats = cluster_stats(clustering.labels, data.lengths, data.gc)
        with open(folder / f"{stem}.stats.tsv", "w", encoding="utf-8") as fh:
            stats.write_tsv(fh)
        if several and number == 0:
            for suffix in (".tsv", ".stats.tsv"):
                _link(folder / f"{stem}{suffix}", folder / f"clusters{suffix}")
        entries.append(
            {
                "name": clustering.name,
                "method": clustering.method,
                "parameter": clustering.parameter,
                "file": f"{stem}.tsv",
                "stats": f"{stem}.stats.tsv",
                "unclustered_contigs": int((clustering.labels < 0).sum()),
                **summary_row(stats),
            }
        )
    with open(folder / "summary.tsv", "w", encoding="utf-8") as fh:
        fh.write("\t".join(SUMMARY_COLUMNS) + "\n")
        for entry in entries:
            fh.write("\t".join(_cell(entry[c]) for c in SUMMARY_COLUMNS) + "\n")
    return entries


def _cell(value: Any) -> str:
    if value is None:
        return "NA"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def _link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:
        shutil.copyfile(source, target)


def write_manifest(
    folder: Path,
    data: ClusterInput,
    request: ClusterRequest,
    entries: list[dict[str, Any]],
    summary: dict[str, Any],
    provenance: dict[str, Any],
    *,
    fmt: str,
    bins: dict[str, Any] | None,
) -> None:
    manifest = {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "kmervae_version": __version__,
        "n_rows": data.n_rows,
        "input": data.source,
        "store": data.source.get("store"),
        "request": request.to_dict(),
        "clusters_format": fmt,
        "graph_summary": summary,
        "clusterings": entries,
        "bins": bins,
        "provenance": provenance,
    }
    (folder / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")


class OutputFolder:
    """A folder that appears under its final name only when :meth:`commit` runs; a failure
    (or :meth:`abort`) leaves nothing behind. ``work`` is a scratch folder inside it (on the
    same disk as the output) that is removed before the commit."""

    def __init__(self, final: Path, overwrite: bool, on_folder: Callable[[Path], None] | None):
        check_writable(final, overwrite)
        self.final = final
        self.tmp = temporary_name(final)
        remove_path(self.tmp)
        self.tmp.mkdir()
        self.work = self.tmp / ".work"
        self.work.mkdir()
        if on_folder is not None:
            on_folder(self.tmp)

    def commit(self) -> Path:
        remove_path(self.work)
        replace_path(self.tmp, self.final)
        return self.final

    def abort(self) -> None:
        remove_path(self.tmp)


def cluster_to_folder(
    source: str | Path,
    output: str | Path,
    request: ClusterRequest,
    *,
    store: str | Path | None = None,
    fmt: str = "kmervae",
    threads: int = 1,
    bins_dir: str | Path | None = None,
    fasta: Sequence[str | Path] = (),
    min_bin_size: int = 200_000,
    provenance: dict[str, Any] | None = None,
    overwrite: bool = False,
    on_folder: Callable[[Path], None] | None = None,
) -> tuple[Path, list[dict[str, Any]]]:
    """Cluster a k-NN graph (graph methods) or a map / embeddings (HDBSCAN) into the folder
    ``output``, and optionally write bins of the first clustering into ``bins_dir``.

    Everything is checked before work starts; the folder and the bins appear only when
    both are complete. Returns the folder and its clusterings' manifest entries.
    """
    from kmervae.cluster.bins import write_bins
    from kmervae.cluster.inputs import open_cluster_input
    from kmervae.cluster.mcl import check_mcl_installed
    from kmervae.cluster.run import cluster_knn, cluster_points
    from kmervae.errors import KmervaeError

    output = Path(output)
    check_writable(output, overwrite)
    if fmt not in ("kmervae", "vamb"):
        raise KmervaeError(f"unknown clusters format {fmt!r} (use kmervae or vamb)")
    if bins_dir is not None:
        bins_dir = Path(bins_dir)
        check_writable(bins_dir, overwrite)
        if not fasta:
            raise KmervaeError("bins need the contigs' sequences: give their FASTA files (fasta)")
        if min_bin_size < 1:
            raise KmervaeError(f"the minimum bin size must be at least 1 bp, got {min_bin_size}")
    elif fasta:
        raise KmervaeError("FASTA files (fasta) are read for bins (bins_dir) only")
    for path in fasta:
        if not Path(path).is_file():
            raise KmervaeError(f"{path}: no such FASTA file")
    if "mcl" in request.methods or request.consensus:
        check_mcl_installed()
    data = open_cluster_input(source, store)
    graph_method = "hdbscan" not in request.methods
    if graph_method and data.graph is None:
        raise KmervaeError(
            f"{source}: {'/'.join(request.methods)} clusters a k-NN graph (kmervae knn); a "
            f"{data.kind} is clustered with the method hdbscan"
        )
    if not graph_method and data.points is None:
        raise KmervaeError(
            f"{source}: hdbscan clusters points: give a map (kmervae map) or embeddings"
        )
    folder = OutputFolder(output, overwrite, on_folder)
    bins_tmp = temporary_name(bins_dir) if bins_dir is not None else None
    try:
        if data.graph is not None and graph_method:
            clusterings, summary = cluster_knn(
                data.graph.indices,
                data.graph.distances,
                data.lengths,
                request,
                folder.work,
                threads=threads,
            )
        else:
            assert data.points is not None
            clusterings, summary = cluster_points(data.points, data.lengths, request)
        bins: dict[str, Any] | None = None
        if bins_tmp is not None:
            remove_path(bins_tmp)
            bins_tmp.mkdir()
            bins = dict(
                write_bins(
                    bins_tmp, fasta, data.ids, clusterings[0].labels, data.lengths, min_bin_size
                )
            )
            bins["clustering"] = clusterings[0].name
            bins["fasta"] = [
                {"path": str(Path(f).resolve()), "bytes": Path(f).stat().st_size} for f in fasta
            ]
            bins["path"] = str(Path(bins_dir).resolve()) if bins_dir else None
        entries = write_cluster_folder(folder.tmp, data, clusterings, fmt=fmt)
        write_manifest(
            folder.tmp,
            data,
            request,
            entries,
            summary,
            provenance or {},
            fmt=fmt,
            bins=bins,
        )
        if bins_tmp is not None and bins_dir is not None:
            replace_path(bins_tmp, Path(bins_dir))
        folder.commit()
    except BaseException:
        folder.abort()
        if bins_tmp is not None:
            remove_path(bins_tmp)
        raise
    return output, entries
