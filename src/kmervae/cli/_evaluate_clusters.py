"""``kmervae evaluate clusters``: its options and its report (the command itself runs in
:mod:`kmervae.cli.evaluate`, beside the other protocols)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from kmervae.cli._common import (
    Bounded,
    add_neighbours_option,
    add_threads_option,
    non_negative_int,
    seed_type,
)
from kmervae.evaluate import BASELINE_HELP, PCA_FIT_ROWS


def add_request_options(group: Any, *, matrix: bool) -> None:
    """How baselines (and matrix cells) are clustered."""
    group.add_argument(
        "--cluster-request",
        metavar="FILE",
        help="the clustering recipe: a cluster folder, its manifest.json or a JSON request "
        "(default: "
        + ("the defaults of 'kmervae cluster')" if matrix else "the recipe of CLUSTERS)"),
    )
    if not matrix:  # the matrix has one -k/--neighbours for every protocol
        add_neighbours_option(
            group,
            "neighbours per contig in the clustering graph (default: the k of the graph the "
            "recipe's folder was made from, or 50)",
        )


def add_clusters_options(parser: argparse.ArgumentParser) -> None:
    group = parser.add_argument_group("the clustering and its contigs")
    group.add_argument(
        "--clustering", metavar="NAME", help="which clustering of a folder (default: clusters.tsv)"
    )
    group.add_argument(
        "--store",
        metavar="STORE",
        help="index store with the contigs' length and gc (default: the folder's store)",
    )
    group.add_argument(
        "--dataset",
        metavar="DATASET",
        help="profile dataset: lengths and GC when there is no store, and the profiles of "
        "--baseline",
    )
    group.add_argument(
        "--min-length",
        type=non_negative_int,
        metavar="BP",
        help="unclustered contigs of at least BP count as evaluated (default: the folder's "
        "--min-length; for a plain TSV only the clustered contigs are evaluated)",
    )
    group.add_argument("--labels", metavar="TSV", help="labels of the contigs' ids")
    add_catalog_option(group)
    group.add_argument(
        "--ranks", help="comma-separated rank columns (default: all columns of --labels)"
    )
    base = parser.add_argument_group("baselines")
    base.add_argument(
        "--baseline",
        nargs="+",
        dest="baselines",
        metavar="SPEC",
        help="cluster these with the same recipe, side by side: baselines "
        f"({BASELINE_HELP}) or model paths; separate with spaces or commas",
    )
    add_request_options(base, matrix=False)
    base.add_argument(
        "--fit", metavar="DATASET", help="dataset PCA baselines are fitted on (default: --dataset)"
    )
    base.add_argument(
        "--fit-rows",
        type=Bounded(int, 2),
        default=PCA_FIT_ROWS,
        metavar="N",
        help=f"PCA is fitted on a seeded sample of at most N rows (default {PCA_FIT_ROWS})",
    )
    base.add_argument(
        "--seed", type=seed_type, default=42, help="seed of every sample (default 42)"
    )
    add_threads_option(base, "CPU threads")
    add_json_output_option(parser)


def add_json_output_option(parser: argparse.ArgumentParser) -> None:
    """``-o/--output`` (also spelt ``--json``) of the protocols that print a report: the
    full result, as JSON."""
    parser.add_argument(
        "-o",
        "--output",
        "--json",
        dest="json",
        type=Path,
        metavar="OUT.json",
        help="also write the full result as JSON (refused if it exists, unless --force)",
    )


def add_catalog_option(group: Any) -> None:
    group.add_argument(
        "--catalog",
        metavar="TSV",
        help="genome catalogue (a 'file' column, one column per rank): --labels is then a "
        "'kmervae chop --table' TSV, joined with it on the genome file",
    )


def attach_catalog(args: argparse.Namespace) -> None:
    """With ``--catalog``, every labels file named becomes a
    :class:`~kmervae.evaluate.labels.LabelsWithCatalog` (a chop table joined with the
    catalogue)."""
    from kmervae.errors import InputError, KmervaeError
    from kmervae.evaluate.labels import LabelsWithCatalog

    catalog = getattr(args, "catalog", None)
    if catalog is None:
        return
    if not Path(catalog).is_file():
        raise InputError(f"{catalog}: no such genome catalogue")
    named = False
    for name in ("labels", "reference_labels"):
        value = getattr(args, name, None)
        if value is not None:
            setattr(args, name, LabelsWithCatalog(Path(value), Path(catalog)))
            named = True
    per = getattr(args, "labels_per_dataset", None)
    if per:
        args.labels_per_dataset = [LabelsWithCatalog(Path(p), Path(catalog)) for p in per]
        named = True
    if not named:
        raise KmervaeError("--catalog goes with --labels (a 'kmervae chop --table' TSV)")


def baseline_specs(values: list[str]) -> list[str]:
    """Specs from ``--baseline`` values, each split at commas, except inside ``clrK,K,..``
    and a path that exists."""
    import re

    specs: list[str] = []
    for value in values:
        if Path(value).exists():
            specs.append(value)
            continue
        for piece in (p.strip() for p in value.split(",")):
            if piece.isdigit() and specs and re.fullmatch(r"clr\d(,\d)*", specs[-1].lower()):
                specs[-1] += "," + piece
            elif piece:
                specs.append(piece)
    return specs


def _pct(value: float | None) -> str:
    return "nan" if value is None or value != value else f"{100 * value:.1f} %"


def format_clusters(result: dict[str, Any]) -> str:
    """The report of ``evaluate clusters``: what was evaluated, then Markdown tables with one
    row per clustering (the input first)."""
    from kmervae.cli.evaluate import _fmt as fmt

    clusters, contigs = result["clusters"], result["contigs"]
    lines = [
        f"clustering: {clusters['clustering']} ({clusters['file']})",
        f"contigs: {contigs['kind']} {contigs['path']} ({contigs['n_rows']} rows); evaluated "
        f"{contigs['evaluated']}: {contigs['clustered']} clustered, {contigs['unclustered']} "
        "in no cluster"
        + (f" (at least {contigs['min_length']} bp)" if contigs.get("min_length") else ""),
    ]
    if contigs["clustered_ids_not_found"]:
        missing = contigs["clustered_ids_not_found"]
        lines.append(f"clustered ids not in the {contigs['kind']} (left out): {missing}")
    labels = result.get("labels")
    if labels:
        lines.append(
            f"labels: {labels['path']}; {labels['rows_without_labels']} evaluated contigs "
            "without labels"
        )
    lines += [f"warning: {w}" for w in result.get("warnings", [])]
    ok = [r for r in result["rows"] if "error" not in r]
    head = "| clustering | clusters | singletons | contigs | largest | N50 (contigs) "
    head += "| GC spread median (pp) | mean | ≤5 pp | ≤5 pp by contigs | ≤5 pp by bp |"
    lines += ["", head, "|---|" + "---|" * 10]
    for row in ok:
        s, g = row["sizes"], row["gc_spread"]
        lines.append(
            f"| {row['name']} | {s['clusters']} | {s['singletons']} | {s['contigs']} | "
            f"{s['largest']} | {s['members_n']['N50']} | {fmt(g['median'], 2)} | "
            f"{fmt(g['mean'], 2)} | {_pct(g['share_within'])} | "
            f"{_pct(g['by_members']['share_within'])} | {_pct(g['by_bp']['share_within'])} |"
        )
    lines.append("GC spread over clusters of 2 or more contigs (a singleton's spread is 0).")
    for row in ok:
        top = ", ".join(
            f"{fmt(c['spread'], 1)} pp ({c['size']} contigs)"
            for c in row["gc_spread"]["largest_clusters"]
        )
        lines.append(f"{row['name']}: GC spread of the three largest clusters: {top}")
    if result.get("ranks"):
        by = next(iter(ok[0]["labels"].values()))["recovered"]["by"] if ok else "bp"
        head = "| clustering | rank | purity | weighted | pure | completeness | weighted "
        head += "| kept whole (labels) | ARI | AMI | recovered | in no cluster |"
        lines += ["", head, "|---|" + "---|" * 11]
        for row in ok:
            for rank in result["ranks"]:
                e = row["labels"][rank]
                p, c, w, r = e["purity"], e["completeness"], e["kept_whole"], e["recovered"]
                lines.append(
                    f"| {row['name']} | {rank} | {fmt(p['mean'])} | {fmt(p['weighted'])} | "
                    f"{_pct(p['pure_share'])} | {fmt(c['mean'])} | {fmt(c['weighted'])} | "
                    f"{_pct(w['share'])} ({w['labels']}) | {fmt(e['ari'])} | {fmt(e['ami'])} | "
                    f"{r['recovered']}/{r['labels']} | {_pct(e['unclustered_share'])} |"
                )
        lines.append(
            "purity: over clusters of 2 or more labelled contigs; completeness and kept whole: "
            "over labels of 2 or more clustered contigs; recovered: a cluster of purity >= "
            f"0.95 holding >= 90 % of the label (by {by})."
        )
    for row in result["rows"]:
        if "error" in row:
            lines.append(f"{row['name']}: error: {row['error']}")
    return "\n".join(lines) + "\n"
