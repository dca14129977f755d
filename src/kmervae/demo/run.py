"""``kmervae demo``: build the mock metagenome, then run the whole pipeline on it."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kmervae._extras import require
from kmervae.demo.inputs import GROUPS, SIZES, DemoInputs, build_demo_inputs
from kmervae.errors import KmervaeError
from kmervae.io.atomic import check_writable, remove_path
from kmervae.provenance import run_provenance

if TYPE_CHECKING:
    from kmervae.pipeline import PipelineResult

log = logging.getLogger(__name__)

#: the training recipe of the demo, the best found on CPU for a few thousand contigs: a
#: small model (latent 32, hidden 512,256), beta 0.01, the distance term, warm-up + cosine
TRAIN_RECIPE: dict[str, Any] = {
    "latent": 32,
    "hidden": "512,256",
    "beta": 0.01,
    "distance_weight": 1,
    "schedule": "cosine",
    "lr": 0.001,
}
#: per size, the options of each stage: training epochs, a validation set of at least one
#: batch and of more rows than the 50 neighbours per query of the fidelity evaluation (its
#: pool is the validation rows); the small demo warms up for fewer epochs and draws its map
#: with fewer t-SNE iterations
SIZE_OPTIONS: dict[str, dict[str, dict[str, Any]]] = {
    "full": {"train": {"epochs": 50, "batch_size": 128, "val_fraction": 0.1}},
    "small": {
        "train": {
            "epochs": 8,
            "batch_size": 32,
            "val_fraction": 0.25,
            "kl_warmup": 2,
            "lr_warmup": 1,
        },
        "map": {"n_iter": 200, "early_iter": 100},
    },
}
#: the folder of the inputs inside the demo's output
INPUTS = "inputs"
#: the report the demo ends with
REPORT = "report.html"


@dataclass
class DemoResult:
    """Where the demo wrote its inputs and report, and how long it took."""

    output: Path
    inputs: DemoInputs
    report: Path
    seconds: float
    pipeline: PipelineResult


def demo_options(size: str, epochs: int | None, device: str) -> dict[str, dict[str, Any]]:
    """The pipeline's per-stage options for a demo of ``size`` (``epochs``: None for the
    size's own)."""
    if size not in SIZES:
        raise KmervaeError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    if epochs is not None and epochs < 1:
        raise KmervaeError(f"epochs must be at least 1, got {epochs}")
    options = {stage: dict(values) for stage, values in SIZE_OPTIONS[size].items()}
    options["train"] = {**TRAIN_RECIPE, **options["train"], "device": device}
    if epochs is not None:
        options["train"]["epochs"] = epochs
    options["embed"] = {"device": device}
    return options


def check_demo_output(output: Path, overwrite: bool) -> None:
    """Refuse, before any work, an output that is a file, exists without ``overwrite``, or
    lies in a missing or read-only folder."""
    if output.exists() and not output.is_dir():
        raise KmervaeError(f"{output}: is a file; the demo writes a folder there")
    check_writable(output, overwrite)


def run_demo(
    output: str | Path,
    *,
    size: str = "full",
    epochs: int | None = None,
    device: str = "auto",
    seed: int = 1,
    threads: int = 0,
    overwrite: bool = False,
    verbosity: int = 0,
    echo: Callable[[str], None] | None = None,
    argv: list[str] | None = None,
) -> DemoResult:
    """Write the demo's inputs to ``OUTPUT/inputs`` and run the pipeline on them into
    ``output``: profiles, a model trained with :data:`TRAIN_RECIPE`, embeddings, the store,
    the k-NN graph, clusters, the map, the quality and taxonomy tables, the comparison of
    groups A and B, and ``report.html``.

    An existing ``output`` is refused unless ``overwrite``; each of its parts is then
    replaced only once its new version is complete. A run that fails leaves nothing behind
    in an ``output`` it created. ``verbosity``: 0 keeps the stages quiet but for warnings,
    1 shows their messages, 2 debug output; ``echo`` receives the progress lines (None:
    logged).
    """
    output = Path(output)
    options = demo_options(size, epochs, device)
    check_demo_output(output, overwrite)
    require("torch", extra="train", purpose="the demo's training")
    from kmervae.pipeline import run_pipeline

    started = time.perf_counter()
    created = not output.exists()
    output.mkdir(exist_ok=True)
    try:
        inputs = build_demo_inputs(
            output / INPUTS,
            size=size,
            seed=seed,
            overwrite=True,
            provenance=run_provenance(argv, seed=seed, size=size),
        )
        per_sample = ", ".join(f"{s}: {n}" for s, n in inputs.per_sample.items())
        (echo or log.info)(
            f"demo: {inputs.n_contigs} contigs ({inputs.n_bases / 1e6:.1f} Mbp) in "
            f"{len(inputs.fastas)} samples ({per_sample}) written to {inputs.folder}"
        )
        result = run_pipeline(
            inputs.fastas,
            output,
            options=options,
            labels=inputs.labels,
            samples=inputs.samples,
            groups=GROUPS,
            seed=seed,
            threads=threads,
            # the folder holds the inputs just written, and was checked above: an existing
            # demo is replaced only with overwrite
            force=True,
            verbosity=verbosity,
            echo=echo,
            argv=argv,
        )
    except BaseException:
        if created:
            remove_path(output)
        raise
    return DemoResult(
        output=output,
        inputs=inputs,
        report=output / REPORT,
        seconds=time.perf_counter() - started,
        pipeline=result,
    )
