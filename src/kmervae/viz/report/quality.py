"""The quality section: the results of ``kmervae evaluate`` as tables, one per protocol, a
model beside its baselines (every result of a protocol in one table, whichever file it
came from), the best value of each column highlighted."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from kmervae.viz.report.html import Column, Section, esc, number, percent, table
from kmervae.viz.report.inputs import ReportInput

#: the order of the protocols' tables
ORDER = ("fidelity", "taxonomy", "reconstruction", "clusters")


def collect_results(inputs: Sequence[ReportInput]) -> dict[str, list[dict[str, Any]]]:
    """protocol -> results, from single results and from the cells of matrices."""
    out: dict[str, list[dict[str, Any]]] = {}
    for item in inputs:
        if item.kind == "evaluation":
            out.setdefault(item.record["protocol"], []).append(item.record)
        elif item.kind == "matrix":
            for result in item.record["results"]:
                result = dict(result)
                if "dataset_info" in result and not isinstance(result.get("dataset"), dict):
                    result["dataset"] = result["dataset_info"]
                out.setdefault(result["protocol"], []).append(result)
    return out


def representation_name(result: dict[str, Any]) -> str:
    """A representation as a table names it: the model folder's name, or the baseline."""
    from kmervae.evaluate.matrix import short_name

    rep = result.get("representation") or {}
    kind = rep.get("kind", "?")
    name = rep.get("path") or rep.get("name") or result.get("model") or "?"
    if kind == "model":
        path = Path(str(name))
        # a run's model folder is called "model": name it by its run
        name = f"{path.parent.name}/{path.name}" if path.name == "model" else short_name(str(name))
    dim = rep.get("dim")
    return f"{name} ({kind}{f', dim {dim}' if dim else ''})"


def dataset_name(result: dict[str, Any]) -> str:
    from kmervae.evaluate.matrix import short_name

    dataset = result.get("dataset")
    path = dataset.get("path") if isinstance(dataset, dict) else dataset
    return short_name(str(path)) if path else "?"


def _base_row(result: dict[str, Any]) -> dict[str, Any]:
    return {
        "rep": representation_name(result),
        "dataset": dataset_name(result),
        "_title": result.get("held_out") or "",
    }


def _get(mapping: Any, *keys: Any) -> Any:
    for key in keys:
        if not isinstance(mapping, dict):
            return None
        mapping = mapping.get(str(key))
    return mapping


def _ordered(values: Sequence[Any]) -> list[str]:
    """Distinct keys as text, numbers in numeric order."""
    seen = list(dict.fromkeys(str(v) for v in values))
    return sorted(seen, key=lambda v: (not v.lstrip("-").isdigit(), int(v) if v.isdigit() else 0))


def fidelity_table(results: list[dict[str, Any]]) -> str:
    tops = _ordered([k for r in results for k in (r.get("mean_clr_mse_top") or {})])
    rows = []
    for r in results:
        row = _base_row(r)
        ci = _get(r, "ci", "spearman")
        row.update(
            pool=r.get("pool"),
            queries=r.get("queries"),
            k=r.get("k"),
            metric=r.get("metric"),
            spearman=r.get("spearman"),
            spearman_text=(
                f"{r['spearman']:.3f} [{ci[0]:.3f}, {ci[1]:.3f}]"
                if isinstance(ci, list) and len(ci) == 2 and r.get("spearman") is not None
                else None
            ),
            pearson=r.get("pearson"),
            random=_get(r, "random", "mean_clr_mse"),
        )
        for t in tops:
            row[f"top{t}"] = _get(r, "mean_clr_mse_top", t)
        rows.append(row)
    columns = [
        Column("rep", "representation", fmt=str),
        Column("dataset", "dataset", fmt=str),
        Column("pool", "pool"),
        Column("queries", "queries"),
        Column("k", "k"),
        Column("spearman", "Spearman [95 % CI]", "high", text="spearman_text"),
        Column("pearson", "Pearson", "high"),
        *[Column(f"top{t}", f"CLR-MSE top {t}", "low", fmt=lambda v: number(v, 4)) for t in tops],
        Column("random", "CLR-MSE random pairs", fmt=lambda v: number(v, 4)),
    ]
    return table(
        columns,
        rows,
        caption="Local-distance fidelity: correlation of latent distance with the CLR-MSE of "
        "the profiles over each query's nearest neighbours (the score depends on the pool "
        "size); mean CLR-MSE of the top neighbours, random pairs as the baseline.",
    )


def taxonomy_table(results: list[dict[str, Any]]) -> str:
    ranks = list(dict.fromkeys(rank for r in results for rank in r.get("ranks") or []))
    ks = _ordered([k for r in results for k in r.get("ks") or []])
    rows = []
    for r in results:
        row = _base_row(r)
        row.update(mode=r.get("mode", "within"), queries=r.get("queries"))
        for rank in ranks:
            for k in ks:
                row[f"{rank}@{k}"] = _get(r, "agreement", rank, k)
            clustering = _get(r, "clustering", rank)
            if isinstance(clustering, dict):
                row[f"{rank}:ari"] = clustering.get("ari")
        rows.append(row)
    columns = [
        Column("rep", "representation", fmt=str),
        Column("dataset", "dataset", fmt=str),
        Column("mode", "mode", fmt=str),
        Column("queries", "queries"),
        *[Column(f"{rank}@{k}", f"{rank} @{k}", "high") for rank in ranks for k in ks],
    ]
    if any(k.endswith(":ari") for row in rows for k in row):
        columns += [Column(f"{rank}:ari", f"{rank} ARI", "high") for rank in ranks]
    return table(
        columns,
        rows,
        caption="Taxonomic neighbour agreement: the share of each query's k nearest "
        "neighbours that share its label, per rank.",
    )


def reconstruction_table(results: list[dict[str, Any]]) -> str:
    ks = _ordered([k for r in results for k in r.get("mse_per_k") or {}])
    ks.sort(key=lambda k: -int(k) if k.isdigit() else 0)
    rows = []
    for r in results:
        row = _base_row(r)
        row.update(rows=r.get("rows"), mse=r.get("mse"), mse_f=r.get("mse_x_features"))
        for k in ks:
            row[f"k{k}"] = _get(r, "mse_per_k", k)
        rows.append(row)
    four = lambda v: number(v, 4)  # noqa: E731
    columns = [
        Column("rep", "representation", fmt=str),
        Column("dataset", "dataset", fmt=str),
        Column("rows", "rows"),
        Column("mse", "MSE", "low", fmt=four),
        Column("mse_f", "MSE × features", "low"),
        *[Column(f"k{k}", f"{k}-mers", "low", fmt=four) for k in ks],
    ]
    return table(
        columns,
        rows,
        caption="Reconstruction: mean squared error of the CLR "
        "profiles, over all features and per k-group.",
    )


def _cluster_rows(results: list[dict[str, Any]]) -> list[tuple[dict[str, Any], dict[str, Any]]]:
    return [(r, row) for r in results for row in r.get("rows") or [] if isinstance(row, dict)]


def clusters_tables(results: list[dict[str, Any]]) -> str:
    pairs = _cluster_rows(results)
    sizes = []
    labels = []
    for result, row in pairs:
        contigs = result.get("contigs") or {}
        name = f"{row.get('name', '?')} ({row.get('kind', '?')})"
        s, gc = row.get("sizes") or {}, row.get("gc_spread") or {}
        sizes.append(
            {
                "name": name,
                "_title": (result.get("clusters") or {}).get("path", ""),
                "contigs": contigs.get("evaluated"),
                "clusters": s.get("clusters"),
                "singletons": s.get("singletons"),
                "clustered": row.get("contigs_clustered"),
                "largest": s.get("largest"),
                "n50": _get(s, "members_n", "N50"),
                "gc_median": gc.get("median"),
                "gc_mean": gc.get("mean"),
                "within": gc.get("share_within"),
                "within_bp": _get(gc, "by_bp", "share_within"),
            }
        )
        for rank, scores in (row.get("labels") or {}).items():
            if not isinstance(scores, dict):
                continue
            rec = scores.get("recovered") or {}
            labels.append(
                {
                    "name": name,
                    "rank": rank,
                    "purity": _get(scores, "purity", "weighted"),
                    "completeness": _get(scores, "completeness", "weighted"),
                    "whole": _get(scores, "kept_whole", "share"),
                    "ari": scores.get("ari"),
                    "ami": scores.get("ami"),
                    "recovered": rec.get("share"),
                    "recovered_text": (
                        f"{rec['recovered']}/{rec['labels']}"
                        if "recovered" in rec and "labels" in rec
                        else None
                    ),
                }
            )
    two = lambda v: number(v, 2)  # noqa: E731
    text = table(
        [
            Column("name", "clustering", fmt=str),
            Column("contigs", "contigs evaluated"),
            Column("clusters", "clusters"),
            Column("singletons", "singletons"),
            Column("clustered", "clustered"),
            Column("largest", "largest"),
            Column("n50", "N50 (contigs)"),
            Column("gc_median", "GC spread median (pp)", "low", fmt=two),
            Column("gc_mean", "GC spread mean (pp)", "low", fmt=two),
            Column("within", "≤ 5 pp", "high", fmt=percent),
            Column("within_bp", "≤ 5 pp by bp", "high", fmt=percent),
        ],
        sizes,
        caption="Cluster quality: sizes, and the GC spread (max − min GC, percentage points) "
        "over clusters of 2 or more contigs.",
    )
    if labels:
        text += table(
            [
                Column("name", "clustering", fmt=str),
                Column("rank", "rank", fmt=str),
                Column("purity", "purity (weighted)", "high"),
                Column("completeness", "completeness (weighted)", "high"),
                Column("whole", "kept whole", "high", fmt=percent),
                Column("ari", "ARI", "high"),
                Column("ami", "AMI", "high"),
                Column("recovered", "recovered", "high", text="recovered_text"),
            ],
            labels,
            group="rank",
            caption="Against the labels, per rank (best values compared within a rank); "
            "recovered: a cluster of purity ≥ 0.95 holding ≥ 90 % of the label.",
        )
    return text


#: the number each protocol's matrix cells are compared by, and which way
_PRIMARY = {"fidelity": ("spearman", "high"), "reconstruction": ("mse", "low")}


def matrix_table(record: dict[str, Any]) -> str:
    """The headline of every model × dataset cell of a matrix, as ``kmervae evaluate
    matrix`` writes it in its Markdown table."""
    from kmervae.evaluate.matrix import headline, short_name

    protocol = record["protocol"]
    key, better = _PRIMARY.get(protocol, ("", None))
    datasets = [str(d) for d in record.get("datasets") or []]
    rows: dict[str, dict[str, Any]] = {}
    for result in record["results"]:
        model = str(result.get("model", "?"))
        row = rows.setdefault(model, {"model": short_name(model), "_title": model})
        d = str(result.get("dataset", "?"))
        row[d] = result.get(key) if key else None
        row[f"{d}:text"] = headline(result)
    columns = [Column("model", "model", fmt=str)] + [
        Column(d, short_name(d), better, text=f"{d}:text") for d in datasets
    ]
    return table(columns, list(rows.values()), css_class="matrix")


def quality_section(section: Section, inputs: Sequence[ReportInput]) -> None:
    """Fill the quality section from the evaluation inputs."""
    results = collect_results(inputs)
    titles = {
        "fidelity": "Local-distance fidelity",
        "taxonomy": "Taxonomic neighbour agreement",
        "reconstruction": "Reconstruction",
        "clusters": "Cluster quality",
    }
    builders = {
        "fidelity": fidelity_table,
        "taxonomy": taxonomy_table,
        "reconstruction": reconstruction_table,
        "clusters": clusters_tables,
    }
    for protocol in ORDER:
        if results.get(protocol):
            section.add(f"<h3>{esc(titles[protocol])}</h3>")
            section.add(builders[protocol](results[protocol]))
    for item in inputs:
        if item.kind == "matrix":
            section.add(f"<h3>Matrix: {esc(item.record['protocol'])} ({esc(item.path.name)})</h3>")
            section.add(matrix_table(item.record))
    section.add(
        '<p class="muted">Hover over a representation for the rows it was scored on. '
        "Highlighted: the best value of a column.</p>"
    )
