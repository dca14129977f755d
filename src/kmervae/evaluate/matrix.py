"""Models × datasets for one protocol, written as Markdown (headline figures) and JSON (all)."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from kmervae.errors import KmervaeError
from kmervae.io.atomic import atomic_file

log = logging.getLogger(__name__)

PROTOCOLS = ("fidelity", "taxonomy", "reconstruction")


def headline(result: dict[str, Any]) -> str:
    """One cell of the Markdown table for a protocol result."""
    protocol = result["protocol"]
    if protocol == "fidelity":
        ci = result.get("ci", {}).get("spearman")
        interval = f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else ""
        return f"{result['spearman']:.3f}{interval} (pool {result['pool']})"
    if protocol == "taxonomy":
        parts = []
        for rank in result["ranks"]:
            value = result["agreement"][rank].get("1")
            if value is not None:
                parts.append(f"{rank}@1 {value:.3f}")
        return "; ".join(parts) + f" (n {result['queries']})"
    if protocol == "reconstruction":
        per_k = " ".join(f"{k}:{v:.3f}" for k, v in result["mse_per_k"].items())
        return f"{result['mse']:.4f} ({per_k})"
    raise KmervaeError(f"unknown protocol {protocol!r}")


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
    lines = [
        f"# kmervae evaluate matrix: {protocol}",
        "",
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
    output = Path(output)
    stem = output.with_suffix("") if output.suffix in (".md", ".json") else output
    md, js = stem.with_name(stem.name + ".md"), stem.with_name(stem.name + ".json")
    record = {
        "protocol": protocol,
        "models": list(models),
        "datasets": list(datasets),
        "results": results,
        "provenance": provenance or {},
    }
    with atomic_file(md, overwrite) as tmp:
        Path(tmp).write_text(matrix_markdown(protocol, models, datasets, results))
    with atomic_file(js, overwrite) as tmp:
        Path(tmp).write_text(json.dumps(record, indent=2, default=_json_default) + "\n")
    return md, js


def _json_default(value: Any) -> Any:
    import numpy as np

    if isinstance(value, np.generic):
        return value.item()
    if isinstance(value, np.ndarray):
        return value.tolist()
    raise TypeError(f"not JSON serialisable: {type(value).__name__}")
