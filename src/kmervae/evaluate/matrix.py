"""Models × datasets for one protocol, written as Markdown (headline figures) and JSON (all)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kmervae.errors import KmervaeError
from kmervae.io.atomic import atomic_file
from kmervae.io.manifest import write_json

log = logging.getLogger(__name__)

PROTOCOLS = ("fidelity", "taxonomy", "reconstruction", "clusters")


_NAME_SUFFIXES = (".kmv", ".npy", ".onnx", ".pt")


def short_name(path: str) -> str:
    """A model's or dataset's name in a table and in ``{model}``/``{dataset}`` templates: the
    last path component without a dataset or model suffix (``runs/a.onnx`` -> ``a``)."""
    name = Path(path).name
    for suffix in _NAME_SUFFIXES:
        if name.endswith(suffix) and len(name) > len(suffix):
            return name[: -len(suffix)]
    return name


def cell_paths(
    template: str, models: Sequence[str], datasets: Sequence[str]
) -> dict[tuple[str, str], str]:
    """``{(model, dataset): path}`` from a path template with ``{model}`` and ``{dataset}``
    placeholders (the short names); a template without them names one file for every cell.

    Raises
    ------
    KmervaeError
        An unknown placeholder, or a placeholder that two models (or datasets) of the
        matrix would fill with the same name.
    """
    try:
        template.format(model="", dataset="")
    except (KeyError, IndexError, ValueError) as exc:
        raise KmervaeError(
            f"{template!r}: a path template may hold only {{model}} and {{dataset}} ({exc})"
        ) from None
    for key, names in (("{model}", models), ("{dataset}", datasets)):
        short = [short_name(n) for n in names]
        if key in template and len(set(short)) < len(short):
            dup = next(n for n in short if short.count(n) > 1)
            raise KmervaeError(
                f"{template!r}: two {key[1:-1]}s are both named {dup!r}, so {key} is ambiguous"
            )
    return {
        (m, d): template.format(model=short_name(m), dataset=short_name(d))
        for m in models
        for d in datasets
    }


def _taxonomy_headline(result: dict[str, Any]) -> str:
    mode = result.get("mode", "within")
    parts = []
    for rank in result["ranks"]:
        scores = result["agreement"][rank]
        value = scores.get("1")
        if value is None:
            continue
        if mode == "within":
            parts.append(f"{rank}@1 {value:.3f}")
        else:  # scored queries differ by rank: unreachable labels are left out
            parts.append(f"{rank}@1 {value:.3f} (n {scores['queries']})")
    cell = "; ".join(parts)
    if mode == "within":
        cell += f" (n {result['queries']})"
    clustering = result.get("clustering")
    if clustering:
        scores = [
            f"{rank} {clustering[rank]['ari']:.3f}/{clustering[rank]['ami']:.3f}"
            for rank in result["ranks"]
            if isinstance(clustering.get(rank), dict)
        ]
        cell += "; ARI/AMI " + ", ".join(scores)
    return cell


def _pick_rank(ranks: list[str], preferred: str, fallback: int) -> str | None:
    """``preferred`` when the labels have it, else the rank at ``fallback`` (None: none)."""
    if preferred in ranks:
        return preferred
    return ranks[fallback] if ranks else None


def _clusters_headline(result: dict[str, Any]) -> str:
    """Clusters and singletons, median GC spread and the share within 5 pp; with labels,
    genus ARI, species kept whole and genomes recovered (or the nearest ranks there are)."""
    rows = result.get("rows") or []
    if not rows:
        return "no clustering"
    row = rows[0]
    sizes, gc = row["sizes"], row["gc_spread"]
    parts = [
        f"{sizes['clusters']} clusters ({sizes['singletons']} singletons)",
        f"GC spread median {gc['median']:.2f} pp, ≤{gc['within']:g} pp {gc['share_within']:.3f}",
    ]
    labels = row.get("labels") or {}
    ranks = list(labels)
    ari_rank = _pick_rank(ranks, "genus", -1)
    if ari_rank is not None:
        parts.append(f"{ari_rank} ARI {labels[ari_rank]['ari']:.3f}")
    whole_rank = _pick_rank(ranks, "species", 0)
    if whole_rank is not None:
        whole = labels[whole_rank]["kept_whole"]
        parts.append(f"{whole_rank} whole {whole['share']:.3f} (n {whole['labels']})")
    if "genome" in labels:
        rec = labels["genome"]["recovered"]
        parts.append(f"genomes recovered {rec['recovered']}/{rec['labels']}")
    cell = "; ".join(parts)
    return f"{row['clustering']}: {cell}" if len(rows) > 1 else cell


def headline(result: dict[str, Any]) -> str:
    """One cell of the Markdown table for a protocol result."""
    protocol = result["protocol"]
    if protocol == "fidelity":
        ci = result.get("ci", {}).get("spearman")
        interval = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        return f"{result['spearman']:.3f}{interval} (pool {result['pool']})"
    if protocol == "taxonomy":
        return _taxonomy_headline(result)
    if protocol == "reconstruction":
        per_k = " ".join(f"{k}:{v:.3f}" for k, v in result["mse_per_k"].items())
        return f"{result['mse']:.4f} ({per_k})"
    if protocol == "clusters":
        return _clusters_headline(result)
    raise KmervaeError(f"unknown protocol {protocol!r}")


def _describe_clusters(first: dict[str, Any]) -> str:
    request = first.get("request") or {}
    graph = request.get("graph") or {}
    methods = ", ".join(request.get("methods", []))
    min_length = first.get("min_length") or 0
    longer = f" of at least {min_length} bp" if min_length else ""
    threshold = graph.get("max_distance")
    edges = f"edges up to {threshold:g}" if threshold is not None else "every edge"
    how = (
        "by HDBSCAN of their vectors"
        if "hdbscan" in methods
        else f"with {methods} on the graph of their {first.get('k')} nearest neighbours ({edges})"
    )
    text = (
        f"Each cell: the held-out rows{longer} of the dataset clustered {how}, then scored "
        "(the first clustering of the recipe, named when there are several). GC spread over "
        "clusters of 2 or more contigs"
    )
    if first.get("ranks"):
        text += (
            "; whole: the share of labels with 2 or more clustered contigs that one cluster "
            "holds (n: labels counted); recovered: a cluster of purity >= 0.95 holding >= 90 % "
            "of the genome's bp"
        )
    return text + "."


def describe_mode(results: list[dict[str, Any]]) -> str | None:
    """One line on how the taxonomy (or clusters) cells were computed (None for other
    protocols)."""
    clustered = [r for r in results if r.get("protocol") == "clusters"]
    if clustered:
        return _describe_clusters(clustered[0])
    done = [r for r in results if r.get("protocol") == "taxonomy"]
    if not done:
        return None
    first = done[0]
    mode = first.get("mode", "within")
    if mode == "reference":
        ref = first["reference"]
        text = (
            f"Mode: reference. Queries are the rows of each dataset; neighbours are the "
            f"{ref['n_rows']} rows of {ref['path']}. n: queries scored at each rank (a label "
            "that no reference carries is left out)."
        )
    elif mode.startswith("exclude-same"):
        rank = mode.split(" ", 1)[1]
        text = (
            f"Mode: exclude-same {rank}. Neighbours sharing the query's {rank} are skipped. "
            f"n: queries scored at each rank (a label found only in the query's own {rank} "
            "is left out)."
        )
    else:
        text = "Mode: within. Neighbours are the other rows of the same dataset."
    if any("clustering" in r for r in done):
        text += " ARI/AMI: the clustering against each rank's labels."
    return text


def evaluate_matrix(
    models: Sequence[str],
    datasets: Sequence[str],
    run_one: Callable[[str, str, int], dict[str, Any]],
) -> list[dict[str, Any]]:
    """``run_one(model, dataset, dataset_index)`` for every pair; failures are recorded
    (``error``) rather than fatal, so one bad pair does not lose the rest."""
    results = []
    for model in models:
        for i, dataset in enumerate(datasets):
            log.info("evaluating %s on %s", model, dataset)
            try:
                entry = run_one(model, dataset, i)
            except KmervaeError as exc:
                log.error("%s on %s: %s", model, dataset, exc)
                entry = {"error": str(exc)}
            info = entry.pop("dataset", None)
            row = {"model": model, "dataset": dataset, **entry}
            if info is not None:
                row["dataset_info"] = info
            results.append(row)
    return results


def matrix_markdown(
    protocol: str, models: Sequence[str], datasets: Sequence[str], results: list[dict[str, Any]]
) -> str:
    """A Markdown table: one row per model, one column per dataset."""
    cell = {(r["model"], r["dataset"]): r for r in results}
    lines = [f"# kmervae evaluate matrix: {protocol}", ""]
    mode = describe_mode(results)
    if mode:
        lines += [mode, ""]
    lines += [
        "| model | " + " | ".join(Path(d).name for d in datasets) + " |",
        "|---|" + "---|" * len(datasets),
    ]
    for model in models:
        cells = []
        for dataset in datasets:
            r = cell.get((model, dataset), {"error": "missing"})
            cells.append(f"error: {r['error']}" if "error" in r else headline(r))
        lines.append(f"| {model} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def matrix_paths(output: str | Path) -> tuple[Path, Path]:
    """``OUTPUT.md`` and ``OUTPUT.json`` (a ``.md`` or ``.json`` suffix on ``output`` is
    dropped)."""
    output = Path(output)
    stem = output.with_suffix("") if output.suffix in (".md", ".json") else output
    return stem.with_name(stem.name + ".md"), stem.with_name(stem.name + ".json")


def write_matrix(
    output: str | Path,
    protocol: str,
    models: Sequence[str],
    datasets: Sequence[str],
    results: list[dict[str, Any]],
    *,
    provenance: dict[str, Any] | None = None,
    overwrite: bool = False,
) -> tuple[Path, Path]:
    """Write ``OUTPUT.md`` and ``OUTPUT.json`` (a suffix on ``output`` is dropped)."""
    md, js = matrix_paths(output)
    record = {
        "protocol": protocol,
        "models": list(models),
        "datasets": list(datasets),
        "results": results,
        "provenance": provenance or {},
    }
    with atomic_file(md, overwrite) as tmp:
        Path(tmp).write_text(matrix_markdown(protocol, models, datasets, results))
    write_json(js, record, overwrite)
    return md, js
