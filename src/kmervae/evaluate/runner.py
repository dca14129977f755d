"""Run a protocol for a model path or baseline name on a dataset path: the API behind
``kmervae evaluate`` (and the benchmark). Each function returns a JSON-ready dict that
names the representation, the dataset and where the held-out rows came from."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kmervae.errors import InputError
from kmervae.evaluate import PCA_FIT_ROWS
from kmervae.evaluate.fidelity import evaluate_fidelity
from kmervae.evaluate.holdout import HeldOut, held_out_rows, sample_rows
from kmervae.evaluate.labels import align_labels, read_clustering, read_labels
from kmervae.evaluate.representations import (
    Representation,
    describe_representation,
    is_baseline,
    open_representation,
    represent_rows,
)
from kmervae.evaluate.taxonomy import TaxonomyRequest, clustering_scores, evaluate_agreement
from kmervae.io.dataset import ProfileDataset, open_dataset

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """Where a representation comes from and how baselines are fitted.

    ``spec``: a model path or a baseline name. ``fit``: the dataset PCA baselines are fitted
    on (a training or reference set; default: the evaluated dataset, with a warning).
    ``run_dir``: a training run whose validation rows are the held-out part of its data.
    """

    spec: str
    fit: str | None = None
    fit_rows: int = PCA_FIT_ROWS
    run_dir: str | None = None
    seed: int = 42
    threads: int | None = None


_FITTED: dict[tuple[str, str, int, str, int, int], Representation] = {}


def _open(source: Source, dataset: ProfileDataset) -> Representation:
    fit_ds: ProfileDataset | None = None
    if source.spec.lower().startswith("pca-"):
        if source.fit is None:
            log.warning(
                "%s is fitted on the evaluated data %s itself; give --fit TRAINSET to fit "
                "it on training data as a model is",
                source.spec,
                dataset.path,
            )
            fit_ds = dataset
        else:
            fit_ds = open_dataset(source.fit)
        key = (
            source.spec.lower(),
            str(Path(fit_ds.path).resolve()),
            fit_ds.n_rows,
            str(fit_ds.manifest.get("ids_sha256")),
            source.fit_rows,
            source.seed,
        )
        if key not in _FITTED:
            _FITTED[key] = open_representation(
                source.spec,
                dataset.layout,
                fit_dataset=fit_ds,
                fit_max_rows=source.fit_rows,
                seed=source.seed,
            )
        return _FITTED[key]
    return open_representation(
        source.spec, dataset.layout, seed=source.seed, threads=source.threads
    )


def _held_out(source: Source, dataset: ProfileDataset) -> HeldOut:
    model_path = None if is_baseline(source.spec) else source.spec
    return held_out_rows(dataset, run_dir=source.run_dir, model_path=model_path)


def _header(rep: Representation, dataset: ProfileDataset, held: HeldOut) -> dict[str, Any]:
    return {
        "representation": describe_representation(rep),
        "dataset": {"path": str(dataset.path), "n_rows": dataset.n_rows},
        "held_out": held.source,
    }


def run_fidelity(
    source: Source,
    dataset: str | Path,
    *,
    pool_size: int | None = None,
    n_queries: int = 100,
    k: int = 50,
    metric: str = "euclidean",
    n_bootstrap: int = 1000,
) -> dict[str, Any]:
    """The fidelity protocol; ``pool_size`` None: 50 000 rows, or all held-out rows if fewer
    (logged); an explicit ``pool_size`` above the held-out rows is an error."""
    ds = open_dataset(dataset)
    held = _held_out(source, ds)
    size = pool_size
    if size is None:
        size = min(50_000, len(held.rows))
        if size < 50_000:
            log.warning(
                "the pool holds all %d held-out rows, below the reference 50 000: "
                "scores depend on the pool size",
                size,
            )
    rep = _open(source, ds)
    result = evaluate_fidelity(
        rep,
        ds,
        held.rows,
        pool_size=size,
        n_queries=n_queries,
        k=k,
        metric=metric,
        seed=source.seed,
        n_bootstrap=n_bootstrap,
    )
    return {"protocol": "fidelity", **_header(rep, ds, held), **result}


def check_taxonomy_modes(
    request: TaxonomyRequest,
    *,
    reference: str | Path | None = None,
    reference_labels: str | Path | None = None,
    clustering: str | Path | None = None,
) -> None:
    """Stop before any work when the taxonomy options do not fit together.

    Raises
    ------
    InputError
        ``reference`` without ``reference_labels`` or the reverse, ``exclude_same`` or a
        distance threshold that does not fit the mode, or a named file that does not exist.
    """
    if reference is not None and reference_labels is None:
        raise InputError("--reference needs --reference-labels (the labels of its ids)")
    if reference_labels is not None and reference is None:
        raise InputError("--reference-labels needs --reference (the labelled dataset)")
    if reference is not None and request.exclude_same:
        raise InputError("--exclude-same applies within one dataset, not with --reference")
    if request.distance_threshold is not None and reference is None:
        raise InputError("--distance-threshold needs --reference")
    if reference is not None and not Path(reference).exists():
        raise InputError(f"{reference}: no such reference dataset")
    for path, what in ((reference_labels, "reference labels"), (clustering, "clustering")):
        if path is not None and not Path(path).is_file():
            raise InputError(f"{path}: no such {what} file")


def run_taxonomy(
    source: Source,
    dataset: str | Path,
    labels: str | Path,
    request: TaxonomyRequest | None = None,
    *,
    reference: str | Path | None = None,
    reference_labels: str | Path | None = None,
    clustering: str | Path | None = None,
    max_queries: int | None = None,
) -> dict[str, Any]:
    """Neighbour agreement (within DATASET, excluding a rank, or against a reference).

    Queries are the held-out rows of ``dataset`` (a seeded sample of ``max_queries`` of
    them when given). Within one dataset, neighbours are drawn from the same rows.
    """
    request = request or TaxonomyRequest()
    check_taxonomy_modes(
        request, reference=reference, reference_labels=reference_labels, clustering=clustering
    )
    ds = open_dataset(dataset)
    held = _held_out(source, ds)
    rows = sample_rows(held.rows, max_queries, source.seed) if reference else held.rows
    rep = _open(source, ds)
    table = read_labels(labels, list(request.ranks) if request.ranks else None)
    ids = ds.ids()
    row_ids = [ids[i] for i in rows]
    aligned = align_labels(table, row_ids)
    vectors = represent_rows(rep, ds, rows)
    lengths = ds.lengths()[rows]
    query_rows = None
    if reference is None and max_queries is not None and max_queries < len(rows):
        rng = np.random.default_rng(source.seed)
        query_rows = np.sort(rng.choice(len(rows), max_queries, replace=False))
    ref_vectors = ref_aligned = None
    extra: dict[str, Any] = {}
    if reference is not None:
        assert reference_labels is not None  # checked above
        ref_ds = open_dataset(reference)
        ref_table = read_labels(reference_labels, table.ranks)
        ref_aligned = align_labels(ref_table, ref_ds.ids(), vocab=aligned.vocab, what="reference")
        ref_vectors = represent_rows(rep, ref_ds, np.arange(ref_ds.n_rows))
        extra["reference"] = {
            "path": str(ref_ds.path),
            "n_rows": ref_ds.n_rows,
            "labels": ref_aligned.report(),
        }
    result = evaluate_agreement(
        vectors,
        aligned,
        lengths,
        request,
        reference=ref_vectors,
        reference_labels=ref_aligned,
        query_rows=query_rows,
    )
    if clustering is not None:
        result["clustering"] = clustering_scores(
            read_clustering(clustering), row_ids, aligned, list(result["ranks"])
        )
    return {"protocol": "taxonomy", **_header(rep, ds, held), **extra, **result}


def run_reconstruction(
    source: Source, dataset: str | Path, *, max_rows: int | None = 50_000
) -> dict[str, Any]:
    """MSE per k-group on (a seeded sample of ``max_rows`` of) the held-out rows."""
    from kmervae.evaluate.reconstruction import reconstruction_mse
    from kmervae.model.files import load_model

    if is_baseline(source.spec):
        raise InputError(
            f"{source.spec}: a baseline has no decoder; reconstruction needs a trained model"
        )
    if str(source.spec).lower().endswith(".onnx"):
        raise InputError(
            f"{source.spec}: an exported ONNX file holds the encoder only; reconstruction "
            "needs the model folder (with its decoder)"
        )
    ds = open_dataset(dataset)
    held = _held_out(source, ds)
    model = load_model(source.spec)
    rows = sample_rows(held.rows, max_rows, source.seed)
    result = reconstruction_mse(model, ds, rows)
    header = {
        "representation": {
            "kind": "model",
            "name": source.spec,
            "ks": list(model.config.ks),
            "dim": model.config.latent,
            "fingerprint": model.fingerprint,
        },
        "dataset": {"path": str(ds.path), "n_rows": ds.n_rows},
        "held_out": held.source,
    }
    return {"protocol": "reconstruction", **header, **result}
