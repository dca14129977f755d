"""One self-contained HTML report of kmervae outputs (``kmervae report``).

The report gathers what its inputs provide (see :mod:`kmervae.viz.report.inputs` for how
each is recognised): the training curves of a run, the tables of ``kmervae evaluate``
results, an interactive map, the clusters, the comparison of sample groups, and the
provenance of every input. The page (``OUT.html``) holds everything inline and opens with
no network; its provenance is written into it as JSON and beside it, in ``OUT.html.json``.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kmervae.errors import InputError, KmervaeError
from kmervae.viz.maps import BUILTIN_COLOURS

if TYPE_CHECKING:
    from kmervae.evaluate.labels import LabelTable

log = logging.getLogger(__name__)

#: the most map points drawn by default
MAX_POINTS = 100_000
#: clusters or labels named in a map's legend by default
TOP = 20


@dataclass
class ReportSummary:
    output: Path
    sections: list[str]
    bytes: int
    seconds: float


def _header(title: str, provenance: dict[str, Any], inputs: Sequence[Any]) -> str:
    from kmervae.viz.report.html import esc, key_values

    kinds: dict[str, int] = {}
    for item in inputs:
        kinds[item.label] = kinds.get(item.label, 0) + 1
    listed = ", ".join(f"{n} {label}" for label, n in kinds.items())
    return key_values(
        [
            ("kmervae", esc(provenance.get("kmervae_version", ""))),
            ("created", esc(provenance.get("created", ""))),
            ("command line", f"<code>{esc(' '.join(provenance.get('command', [])))}</code>"),
            ("inputs", esc(listed)),
        ]
    )


def _colour_choice(color: str | None, has_clusters: bool, labels: LabelTable | None) -> str:
    """What the maps are coloured by, as ``kmervae map`` chooses it: ``color``, else
    ``cluster`` with a cluster folder, else the first column of the labels, else ``gc``;
    a label column must be in the labels (a :class:`~kmervae.evaluate.labels.LabelTable`)."""
    if color is None:
        if has_clusters:
            return "cluster"
        return labels.ranks[0] if labels is not None else "gc"
    if color not in BUILTIN_COLOURS and labels is not None and color not in labels.ranks:
        raise InputError(
            f"{labels.path}: no column {color!r} to colour the map by (columns: "
            f"{', '.join(labels.ranks)})"
        )
    return color


def build_report(
    inputs: Sequence[str | Path],
    output: str | Path,
    *,
    title: str | None = None,
    samples: str | Path | None = None,
    labels: str | Path | None = None,
    color: str | None = None,
    top: int = TOP,
    max_points: int = MAX_POINTS,
    seed: int = 1,
    provenance: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> ReportSummary:
    """Write the report of ``inputs`` to ``output`` (HTML) and its provenance to
    ``output.json``.

    Parameters
    ----------
    inputs : kmervae outputs: training runs, model folders, evaluate JSON results, map,
        cluster, compare, embed and pipeline folders, and any output with a manifest.
    title : the page's title (default: "kmervae report").
    samples : a samples TSV (contig, sample, group) for the map's tooltips; default: the
        source file of each contig, from an embed folder among the inputs.
    labels : a labels TSV (a header line, the contig id first, then one column per label):
        every column in the map's tooltips; only the drawn contigs' labels are kept.
    color : what the map is coloured by: ``gc``, ``length``, ``cluster`` (a cluster folder
        among the inputs) or a column of ``labels``; default: ``cluster`` with a cluster
        folder, else the first column of ``labels``, else ``gc``.
    top : clusters or labels named in the map's legend, the most frequent (the rest grey).
    max_points : map points drawn at most; a bigger map is sampled (seeded) and shown with a
        density image of all its points too.
    seed : of the map sample.
    provenance : of the command (:func:`kmervae.provenance.run_provenance`).

    Raises
    ------
    KmervaeError / InputError
        An input the report cannot read, a bad option, an existing output without
        ``overwrite``: all before anything is written.
    """
    from kmervae.io.atomic import check_writable, naming_oserrors
    from kmervae.provenance import atomic_with_sidecar, file_sha256, run_provenance
    from kmervae.viz.report import sections
    from kmervae.viz.report.html import Page
    from kmervae.viz.report.inputs import of_kind, resolve_inputs
    from kmervae.viz.report.mapview import map_points
    from kmervae.viz.report.quality import quality_section

    started = time.perf_counter()
    output = Path(output)
    if max_points < 1:
        raise KmervaeError(f"max_points must be at least 1, got {max_points}")
    if top < 1:
        raise KmervaeError(f"top must be at least 1, got {top}")
    if not inputs:
        raise KmervaeError("no input to report on")
    check_writable(output, overwrite)
    provenance = provenance or run_provenance(seed=seed)
    title = title or "kmervae report"
    found = resolve_inputs([Path(p) for p in inputs])
    for item in found:
        if item.path.resolve() == output.resolve():
            raise KmervaeError(f"{output} is one of the inputs")
    has_clusters = bool(of_kind(found, "clusters"))
    if color == "cluster" and not has_clusters:
        raise KmervaeError("--color cluster needs a cluster folder among the inputs")
    if color is not None and color not in BUILTIN_COLOURS and labels is None:
        raise KmervaeError(
            f"--color {color} needs --labels TSV with a column {color!r} "
            f"(or use {', '.join(BUILTIN_COLOURS)})"
        )
    samples_path = None
    if samples is not None:
        from kmervae.viz.compare import read_samples

        samples_path = read_samples(samples).path
    map_inputs = of_kind(found, "map")
    drawn = [map_points(item.data["map"], max_points, seed) for item in map_inputs]
    table = None
    if labels is not None:
        from kmervae.evaluate.labels import read_labels

        # one pass over the file, keeping the drawn contigs' labels only
        table = read_labels(labels, ids={i for points in drawn for i in points.ids})
        if not map_inputs:
            log.warning("--labels %s is not used: no map among the inputs", labels)
    colour = _colour_choice(color, has_clusters, table)

    page = Page()
    maps_record = []
    if of_kind(found, "run", "model"):
        sections.training_section(page, page.section("training", "Training"), found)
    if of_kind(found, "evaluation", "matrix"):
        quality_section(page.section("quality", "Quality"), found)
    if map_inputs:
        section = page.section("map", "Map")
        for item, points in zip(map_inputs, drawn, strict=True):
            maps_record.append(
                sections.map_section(
                    page,
                    section,
                    item,
                    found,
                    points,
                    samples=samples_path,
                    labels=table,
                    colour=colour,
                    colour_asked=color is not None,
                    top=top,
                    seed=seed,
                )
            )
    if of_kind(found, "clusters"):
        section = page.section("clusters", "Clusters")
        for item in of_kind(found, "clusters"):
            sections.clusters_section(page, section, item)
    if of_kind(found, "compare"):
        section = page.section("comparison", "Sample comparison")
        for item in of_kind(found, "compare"):
            sections.compare_section(section, item)
    sections.provenance_section(page.section("provenance", "Provenance"), found)

    record: dict[str, Any] = {
        "kind": "report",
        "title": title,
        "inputs": [item.describe() for item in found],
        "samples": None
        if samples_path is None
        else {"path": str(samples_path.resolve()), "sha256": file_sha256(samples_path)},
        "labels": None
        if table is None
        else {
            "path": str(table.path.resolve()),
            "sha256": file_sha256(table.path),
            "columns": table.ranks,
        },
        "color": colour,
        "top": top,
        "max_points": max_points,
        "sections": [s.anchor for s in page.sections],
        "maps": maps_record,
        "provenance": provenance,
    }
    text = page.render(title, _header(title, provenance, found), record)
    data = text.encode("utf-8")
    with naming_oserrors(output), atomic_with_sidecar(output, record, overwrite=overwrite) as tmp:
        Path(tmp).write_bytes(data)
        record["bytes"] = len(data)
        record["seconds"] = round(time.perf_counter() - started, 3)
    log.info(
        "report of %d inputs (%s) written to %s: %.1f MB in %.1f s",
        len(found),
        ", ".join(record["sections"]),
        output,
        len(data) / 1e6,
        record["seconds"],
    )
    return ReportSummary(output, record["sections"], len(data), record["seconds"])
