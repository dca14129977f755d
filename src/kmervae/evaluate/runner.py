"""Run a protocol for a model path or baseline name on a dataset path: the API behind
``kmervae evaluate`` (and the benchmark). Each function returns a JSON-ready dict that
names the representation, the dataset and where the held-out rows came from."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kmervae._extras import require
from kmervae.errors import InputError, KmervaeError
from kmervae.evaluate import PCA_FIT_ROWS, TRAINING_ROWS
from kmervae.evaluate.cluster_inputs import (
    cluster_representation,
    cluster_request,
    dataset_rows,
    open_cluster_file,
    open_contigs,
    recorded_k,
    request_min_length,
    source_ids,
)
from kmervae.evaluate.fidelity import evaluate_fidelity
from kmervae.evaluate.holdout import (
    HeldOut,
    held_out_rows,
    recorded_validation,
    training_overlap,
    training_record,
)
from kmervae.evaluate.labels import align_labels, read_clustering, read_labels
from kmervae.evaluate.representations import (
    Representation,
    describe_representation,
    is_baseline,
    model_path,
    open_representation,
    represent_rows,
)
from kmervae.evaluate.taxonomy import TaxonomyRequest, clustering_scores, evaluate_agreement
from kmervae.io.dataset import ProfileDataset, dataset_record, open_dataset
from kmervae.model.config import model_kind
from kmervae.model.data import sample_rows

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Source:
    """Where a representation comes from and how baselines are fitted.

    ``spec``: a model path or a baseline name. ``fit``: the dataset PCA baselines are fitted
    on (a training or reference set; default: the evaluated dataset, with a warning).
    ``run_dir``: a training run whose validation rows are the held-out part of its data.
    ``training_rows``: what to do with evaluated rows the model was trained on (see
    :func:`kmervae.evaluate.holdout.training_overlap`): ``refuse`` (stop with an error),
    ``exclude`` (leave them out, with a warning) or ``include`` (score them, with a warning).
    """

    spec: str
    fit: str | None = None
    fit_rows: int = PCA_FIT_ROWS
    run_dir: str | None = None
    seed: int = 42
    threads: int | None = None
    training_rows: str = "refuse"


_FITTED: dict[tuple[str, str, int, str, int, int], Representation] = {}


def _open(source: Source, dataset: ProfileDataset) -> Representation:
    fit_ds: ProfileDataset | None = None
    if source.spec.lower().startswith("pca-"):
        if source.fit is None:
            log.warning(
                "%s is fitted on the evaluated data %s itself; fit it on training data instead, "
                "as a model is (a dataset to fit on, or a PCA model folder)",
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
    """The held-out rows of ``dataset``, less (or refusing) rows the model was trained on."""
    if source.training_rows not in TRAINING_ROWS:
        raise KmervaeError(
            f"training_rows {source.training_rows!r}: use one of {', '.join(TRAINING_ROWS)}"
        )
    if is_baseline(source.spec):
        return held_out_rows(dataset, run_dir=source.run_dir)
    held = held_out_rows(dataset, run_dir=source.run_dir, model_path=model_path(source.spec))
    record = training_record(model_path(source.spec), run_dir=source.run_dir)
    if record is None:
        log.warning(
            "%s records no training data (no run.json beside it, no training_data in its "
            "card): cannot check that %s holds none of its training rows",
            source.spec,
            dataset.path,
        )
        return held
    if len(held.rows) == dataset.n_rows:  # no run said which rows were held out
        held = recorded_validation(dataset, record) or held
    overlap = training_overlap(dataset, held.rows, record)
    if overlap is None or (overlap.rows is not None and len(overlap.rows) == 0):
        return held
    if overlap.rows is None:
        what = (
            f"{dataset.path} was built from the training data of {source.spec} "
            f"({record.path}) and its rows cannot be told apart from it"
        )
        if source.training_rows == "include":
            log.warning("%s; scoring every row (training_rows include)", what)
            return held
        raise InputError(f"{what}; evaluate a held-out dataset, or set training_rows to include")
    n, total = len(overlap.rows), len(held.rows)
    what = (
        f"{dataset.path}: {n} of {total} evaluated rows (e.g. {overlap.example}) are training "
        f"rows of {source.spec} (trained on {record.path}, recorded in {record.where})"
    )
    if source.training_rows == "include":
        log.warning("%s; scored anyway (training_rows include): not held-out scores", what)
        return HeldOut(held.rows, held.source + f", {n} of them training rows")
    if source.training_rows == "exclude":
        rows = np.setdiff1d(held.rows, overlap.rows)
        log.warning("%s; left out (training_rows exclude): %d rows remain", what, len(rows))
        if len(rows) == 0:
            raise InputError(f"{what}: no held-out row is left")
        return HeldOut(rows, held.source + f", less {n} training rows: {len(rows)} rows")
    hint = (
        "; give its training run (run_dir) to use the validation rows of that run"
        if not record.split_known and n == total
        else ""
    )
    raise InputError(
        f"{what}: scores on them are not held out; evaluate held-out data, or use "
        f"training_rows exclude (or include){hint}"
    )


def _header(rep: Representation, dataset: ProfileDataset, held: HeldOut) -> dict[str, Any]:
    return {
        "representation": describe_representation(rep),
        "dataset": dataset_record(dataset),
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
        raise InputError("reference needs reference_labels (the labels of its ids)")
    if reference_labels is not None and reference is None:
        raise InputError("reference_labels needs reference (the labelled dataset)")
    if reference is not None and request.exclude_same:
        raise InputError("exclude_same applies within one dataset, not with a reference")
    if request.distance_threshold is not None and reference is None:
        raise InputError("distance_threshold needs reference")
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
            read_clustering(clustering, ids), row_ids, aligned, list(result["ranks"])
        )
    return {"protocol": "taxonomy", **_header(rep, ds, held), **extra, **result}


def run_reconstruction(
    source: Source, dataset: str | Path, *, max_rows: int | None = 50_000
) -> dict[str, Any]:
    """MSE per k-group on (a seeded sample of ``max_rows`` of) the held-out rows."""
    if is_baseline(source.spec):
        raise InputError(
            f"{source.spec}: a baseline has no decoder; reconstruction needs a trained model"
        )
    path = model_path(source.spec)  # a w2: spec reconstructs like its model
    if model_kind(path) == "pca":
        raise InputError(
            f"{source.spec}: a PCA model has no decoder; reconstruction needs a trained VAE"
        )
    if path.lower().endswith(".onnx"):
        raise InputError(
            f"{source.spec}: an exported ONNX file holds the encoder only; reconstruction "
            "needs the model folder (with its decoder)"
        )
    require("torch", extra="train", purpose="reconstruction")
    from kmervae.evaluate.reconstruction import reconstruction_mse
    from kmervae.model.files import load_model

    ds = open_dataset(dataset)
    held = _held_out(source, ds)
    model = load_model(path)
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
        "dataset": dataset_record(ds),
        "held_out": held.source,
    }
    return {"protocol": "reconstruction", **header, **result}


# -- cluster quality -------------------------------------------------------------------


def check_cluster_inputs(
    clusters: str | Path,
    *,
    store: str | Path | None = None,
    dataset: str | Path | None = None,
    labels: str | Path | None = None,
    baselines: Sequence[Source] = (),
) -> None:
    """Stop before any work when the inputs of :func:`run_clusters` cannot fit together.

    Raises
    ------
    InputError
        A baseline without ``dataset``, or a named file or folder that does not exist.
    """
    if baselines and dataset is None:
        raise InputError("baselines need dataset: the profiles the baselines are computed from")
    named = [(clusters, "cluster folder or clustering file"), (store, "index store")]
    named += [(dataset, "profile dataset"), (labels, "labels file")]
    named += [(s.fit, "dataset to fit the baselines on") for s in baselines]
    for path, what in named:
        if path is not None and not Path(path).exists():
            raise InputError(f"{path}: no such {what}")


def _clustering_rows(
    name: str, found: list[tuple[str, np.ndarray]], given: np.ndarray, n: int
) -> list[tuple[str, np.ndarray]]:
    """The clusterings of a baseline to score, spread over all ``n`` evaluated contigs:
    the one named like the input clustering if there is one, else all of them."""
    same = [f for f in found if f[0] == name]
    out = []
    for label, labels in same or found:
        full = np.full(n, -1, np.int64)
        full[given] = labels
        out.append((label, full))
    return out


def _warn_one_cluster(name: str, quality: dict[str, Any], warnings: list[str]) -> None:
    if quality["sizes"]["clusters"] == 1:
        text = f"{name}: every clustered contig is in one cluster"
        log.warning("%s", text)
        warnings.append(text)


def run_clusters(
    clusters: str | Path,
    *,
    clustering: str | None = None,
    store: str | Path | None = None,
    dataset: str | Path | None = None,
    labels: str | Path | None = None,
    ranks: Sequence[str] | None = None,
    baselines: Sequence[Source] = (),
    min_length: int | None = None,
    request: dict[str, Any] | None = None,
    k: int | None = None,
    threads: int | None = None,
) -> dict[str, Any]:
    """Cluster quality of a clustering and, side by side, of the same clustering recipe run
    on baseline representations.

    Parameters
    ----------
    clusters : a ``kmervae cluster`` folder or a clustering TSV; ``clustering`` picks one
        clustering of a folder by name.
    store, dataset : where lengths and GC come from (default: the folder's store); the
        baselines' profiles come from ``dataset``.
    labels, ranks : a labels TSV and the ranks to score (default: all its columns).
    baselines : representations (baselines or models) whose vectors of the evaluated
        contigs are clustered with ``request`` (default: the folder's request, or the
        defaults of ``kmervae cluster`` for a plain TSV) and ``k`` neighbours (default: the
        folder's graph's k, or 50).
    min_length : unclustered contigs at least this long count as evaluated (default: the
        request's minimum length for a folder; for a plain TSV only clustered contigs are
        evaluated).

    Returns
    -------
    A JSON-ready dict: the clustering, the contigs, the labels and one entry of ``rows`` per
    clustering scored (the input first); a baseline that fails is recorded with its
    ``error``.
    """
    from kmervae.evaluate.clusters import cluster_quality

    check_cluster_inputs(clusters, store=store, dataset=dataset, labels=labels, baselines=baselines)
    cf = open_cluster_file(clusters, clustering)
    if request is None:
        request = cf.request
    if min_length is None and cf.manifest is not None:
        min_length = request_min_length(request)
    table = read_labels(labels, list(ranks) if ranks else None) if labels is not None else None
    ds = open_dataset(dataset) if dataset is not None else None
    assignments = read_clustering(cf.file, lambda: source_ids(store, ds))
    contigs = open_contigs(cf, assignments, store, ds, min_length)
    aligned = None
    if table is not None:
        aligned = align_labels(table, contigs.ids, what="evaluated contig")
    rank_list = list(aligned.ranks) if aligned is not None else []
    n = len(contigs.ids)
    warnings: list[str] = []

    lengths = contigs.lengths if contigs.source.get("has_length", True) else None

    def score(clusters_: np.ndarray) -> dict[str, Any]:
        return cluster_quality(clusters_, lengths, contigs.gc, labels=aligned, ids=contigs.ids)

    rows: list[dict[str, Any]] = []
    input_quality = score(contigs.clusters)
    _warn_one_cluster(cf.name, input_quality, warnings)
    recorded = (cf.manifest or {}).get("store") or {}
    rows.append(
        {
            "name": cf.name,
            "kind": "input",
            "representation": {
                "kind": "input",
                "name": cf.name,
                "model_fingerprint": recorded.get("model_fingerprint"),
            },
            "contigs_clustered": int((contigs.clusters >= 0).sum()),
            **input_quality,
        }
    )
    graph_k = k or recorded_k(cf.manifest) or 50
    if baselines:
        assert ds is not None  # checked above
        recipe = cluster_request(request)
        notes = []
        if "hdbscan" not in recipe.methods and recipe.graph.max_distance is not None:
            notes.append(
                f"the baselines' graphs drop edges longer than {recipe.graph.max_distance:g}, "
                "a distance chosen for the input's space; other representations have other "
                "scales"
            )
        made_from = ((cf.manifest or {}).get("input") or {}).get("kind")
        if "hdbscan" in recipe.methods and made_from not in (None, "embeddings"):
            notes.append(
                f"{cf.name} was made by HDBSCAN on a {made_from}; the baselines are clustered "
                "by HDBSCAN on their vectors themselves"
            )
        for text in notes:
            log.warning("%s", text)
            warnings.append(text)
        ds_rows = dataset_rows(contigs, ds)
        given = np.flatnonzero(ds_rows >= 0)
        if len(given) < n:
            text = f"{n - len(given)} of {n} evaluated contigs are not in {ds.path}"
            log.warning("%s: the baselines leave them unclustered", text)
            warnings.append(text)
        order = np.argsort(ds_rows[given], kind="stable")
        given = given[order]
        for source in baselines:
            try:
                rep = _open(source, ds)
                vectors = represent_rows(rep, ds, ds_rows[given])
                found = cluster_representation(
                    vectors, contigs.lengths[given], request, k=graph_k, threads=threads
                )
            except KmervaeError as exc:
                log.error("%s: %s", source.spec, exc)
                rows.append({"name": source.spec, "kind": "baseline", "error": str(exc)})
                continue
            described = describe_representation(rep)
            for label, full in _clustering_rows(cf.name, found, given, n):
                name = rep.name if len(found) == 1 or label == cf.name else f"{rep.name} {label}"
                quality = score(full)
                _warn_one_cluster(name, quality, warnings)
                rows.append(
                    {
                        "name": name,
                        "kind": described.get("kind", "baseline"),
                        "representation": described,
                        "clustering": label,
                        "contigs_clustered": int((full >= 0).sum()),
                        **quality,
                    }
                )
    return {
        "protocol": "clusters",
        "clusters": {
            "path": str(cf.path),
            "file": str(cf.file),
            "clustering": cf.name,
            "kind": "folder" if cf.manifest is not None else "file",
        },
        "contigs": {
            **contigs.source,
            "evaluated": n,
            "clustered": int((contigs.clusters >= 0).sum()),
            "unclustered": int((contigs.clusters < 0).sum()),
            "min_length": min_length,
            "below_min_length": contigs.below_min_length,
            "clustered_ids_not_found": contigs.not_found,
        },
        "labels": None
        if aligned is None or table is None
        else {"path": str(table.path), **aligned.report()},
        "ranks": rank_list,
        "request": cluster_request(request).to_dict() if baselines else request,
        "k": graph_k if baselines else None,
        "rows": rows,
        "warnings": warnings,
    }


def run_cluster_quality(
    source: Source,
    dataset: str | Path,
    *,
    labels: str | Path | None = None,
    ranks: Sequence[str] | None = None,
    request: dict[str, Any] | None = None,
    k: int = 50,
) -> dict[str, Any]:
    """Cluster a representation of DATASET's held-out rows with ``request`` (default: the
    defaults of ``kmervae cluster``) and score every clustering it yields (the matrix's
    ``clusters`` protocol). Contigs below the request's minimum length are left out."""
    from kmervae.evaluate.clusters import cluster_quality

    ds = open_dataset(dataset)
    held = _held_out(source, ds)
    min_length = request_min_length(request)
    all_lengths = ds.lengths()
    rows = held.rows[all_lengths[held.rows] >= min_length]
    if len(rows) < 2:
        raise InputError(
            f"{ds.path}: {len(rows)} held-out contig(s) of at least {min_length} bp; nothing "
            "to cluster"
        )
    table = read_labels(labels, list(ranks) if ranks else None) if labels is not None else None
    rep = _open(source, ds)
    ids = ds.ids()
    row_ids = [ids[i] for i in rows]
    aligned = align_labels(table, row_ids) if table is not None else None
    lengths = all_lengths[rows].astype(np.int64)
    gc = ds.gc()[rows].astype(np.float64)
    vectors = represent_rows(rep, ds, rows)
    found = cluster_representation(vectors, lengths, request, k=k, threads=source.threads)
    scored = []
    for name, labels_ in found:
        quality = cluster_quality(labels_, lengths, gc, labels=aligned, ids=row_ids)
        _warn_one_cluster(f"{rep.name} {name}", quality, [])
        scored.append({"clustering": name, **quality})
    return {
        "protocol": "clusters",
        **_header(rep, ds, held),
        "contigs": len(rows),
        "min_length": min_length,
        "k": k,
        "request": cluster_request(request).to_dict(),
        "ranks": list(aligned.ranks) if aligned is not None else [],
        "labels": aligned.report() if aligned is not None else None,
        "rows": scored,
    }
