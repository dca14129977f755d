"""``kmervae evaluate``: quality of a model (or a baseline) by the protocols of
docs/evaluate.md."""

from __future__ import annotations

import argparse
import importlib.util
import logging
import sys
from pathlib import Path
from typing import Any

from kmervae.cli._common import (
    Bounded,
    add_common_options,
    add_neighbours_option,
    add_threads_option,
    non_negative_float,
    non_negative_int,
    positive_int,
    positive_int_list,
    seed_type,
)
from kmervae.cli._evaluate_clusters import (
    add_catalog_option,
    add_clusters_options,
    add_json_output_option,
    add_request_options,
    attach_catalog,
    baseline_specs,
    format_clusters,
)
from kmervae.errors import KmervaeError
from kmervae.evaluate import BASELINE_HELP, PCA_FIT_ROWS, TRAINING_ROWS
from kmervae.io.atomic import check_writable
from kmervae.io.manifest import write_json
from kmervae.provenance import run_provenance

log = logging.getLogger(__name__)

MAX_BOOTSTRAP = 1_000_000
FIT_ROWS = Bounded(int, 2)

MODEL_HELP = (
    "a model folder (VAE or PCA), checkpoint .pt or .onnx (w2:PATH: a VAE's mu and sigma, "
    "its 2-Wasserstein distances); or a baseline: " + BASELINE_HELP
)


def _add_source_options(parser: argparse.ArgumentParser, *, json_output: bool = True) -> None:
    group = parser.add_argument_group("representation and held-out rows")
    group.add_argument(
        "--fit",
        metavar="DATASET",
        help="dataset PCA baselines are fitted on (a training or reference set; default: the "
        "evaluated dataset, with a warning)",
    )
    group.add_argument(
        "--fit-rows",
        type=FIT_ROWS,
        default=PCA_FIT_ROWS,
        metavar="N",
        help=f"PCA is fitted on a seeded sample of at most N rows, N >= 2 (default {PCA_FIT_ROWS})",
    )
    group.add_argument(
        "--run",
        dest="training_run",
        metavar="RUN_DIR",
        help="a training run: if DATASET is its training data, only its validation rows are "
        "used (found automatically for MODEL = RUN_DIR/model)",
    )
    group.add_argument(
        "--training-rows",
        choices=TRAINING_ROWS,
        default="refuse",
        help="rows of DATASET that MODEL was trained on (found through the training data its "
        "model folder or run records, matched by id): refuse (default) stops with an "
        "error, exclude leaves them out with a warning, include scores them anyway (the "
        "scores are then not held-out scores)",
    )
    group.add_argument(
        "--seed", type=seed_type, default=42, help="seed of every sample (default 42)"
    )
    add_threads_option(group, "CPU threads")
    if json_output:
        add_json_output_option(parser)


def _add_fidelity_options(parser: argparse.ArgumentParser, *, matrix: bool = False) -> None:
    group = parser.add_argument_group("fidelity protocol")
    group.add_argument(
        "--pool-size",
        type=Bounded(int, 2),
        default=None,
        metavar="N",
        help="pool rows, a seeded sample of the held-out rows (default 50000, or all held-out "
        "rows if fewer; asking for more than there are is an error)",
    )
    group.add_argument(
        "--queries", type=positive_int, default=100, metavar="N", help="queries, >= 1 (default 100)"
    )
    if not matrix:
        add_neighbours_option(group, "neighbours per query, >= 1 (default 50)")
    group.add_argument(
        "--metric", choices=("euclidean", "cosine"), default="euclidean", help="(default euclidean)"
    )
    group.add_argument(
        "--bootstrap",
        type=Bounded(int, 0, MAX_BOOTSTRAP),
        default=1000,
        metavar="N",
        help=f"bootstrap resamples of queries, 0 (no intervals) to {MAX_BOOTSTRAP} (default 1000)",
    )


def _add_taxonomy_options(parser: argparse.ArgumentParser, *, matrix: bool = False) -> None:
    """The taxonomy options; ``matrix``: labels optional (or one file per dataset) and a
    clustering file may be a template, and --metric comes from the fidelity group."""
    group = parser.add_argument_group("taxonomy protocol")
    if matrix:
        group.add_argument("--labels", metavar="TSV", help="labels of every dataset's ids")
        group.add_argument(
            "--labels-per-dataset",
            nargs="+",
            metavar="TSV",
            help="one labels file per dataset, in the order of --datasets",
        )
    else:
        group.add_argument("--labels", required=True, metavar="TSV", help="labels of DATASET's ids")
    add_catalog_option(group)
    group.add_argument(
        "--ranks", help="comma-separated rank columns (default: all columns of --labels)"
    )
    if not matrix:
        add_neighbours_option(
            group,
            "neighbour counts scored, each >= 1 (default 1,5,10,50)",
            type=positive_int_list,
            metavar="K,K,...",
        )
    group.add_argument(
        "--exclude-same",
        metavar="RANK",
        help="skip neighbours that share the query's label at RANK (e.g. genome)",
    )
    group.add_argument(
        "--length-bins",
        type=positive_int_list,
        default=(2000, 5000, 10000, 20000),
        metavar="BP,BP,...",
        help="contig-length bin edges (default 2000,5000,10000,20000)",
    )
    group.add_argument(
        "--reference",
        metavar="DATASET",
        help="neighbours from this labelled reference set"
        + (" (queries: the rows of each dataset)" if matrix else ""),
    )
    group.add_argument("--reference-labels", metavar="TSV", help="labels of the reference's ids")
    group.add_argument(
        "--distance-threshold",
        type=non_negative_float,
        metavar="D",
        help="with --reference: how often the nearest reference is closer than this",
    )
    group.add_argument(
        "--clustering",
        metavar="TSV",
        help="id<TAB>cluster: ARI and AMI against the labels"
        + (
            "; {model} and {dataset} in the path stand for their names (e.g. "
            "clusters/{model}.{dataset}.tsv), so each cell reads its own clustering"
            if matrix
            else ""
        ),
    )
    group.add_argument(
        "--max-queries",
        type=positive_int,
        metavar="N",
        help="a seeded sample of N >= 1 queries (default all)",
    )
    if not matrix:
        group.add_argument(
            "--metric",
            choices=("euclidean", "cosine"),
            default="euclidean",
            help="(default euclidean)",
        )


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "evaluate",
        help="embedding quality: fidelity, taxonomy, reconstruction, clusters, matrix",
        description="Measure a model, or a baseline computed by the same code, with the "
        "protocols described in docs/evaluate.md. MODEL is a model path or a baseline name "
        f"({BASELINE_HELP}).",
    )
    proto = parser.add_subparsers(dest="protocol", metavar="PROTOCOL", required=True)

    fid = proto.add_parser(
        "fidelity",
        help="local-distance fidelity (Spearman/Pearson of latent distance vs CLR-MSE)",
        description="From a pool of held-out rows, random queries and their nearest "
        "neighbours: correlation of distance with CLR-MSE, mean CLR-MSE of the top 1/5/10/20/50, "
        "random pairs as a baseline, bootstrap 95 % intervals over queries.",
    )
    fid.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    fid.add_argument("dataset", metavar="DATASET", help="profile dataset (held-out rows)")
    _add_fidelity_options(fid)
    _add_source_options(fid)
    add_common_options(fid)
    fid.set_defaults(run=run)

    tax = proto.add_parser(
        "taxonomy",
        help="taxonomic neighbour agreement (and ARI/AMI of a clustering)",
        description="Fraction of the k nearest neighbours sharing the query's label, per "
        "rank and contig-length bin; within DATASET, with --exclude-same RANK, or against a "
        "labelled --reference.",
    )
    tax.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    tax.add_argument("dataset", metavar="DATASET", help="profile dataset (the queries)")
    _add_taxonomy_options(tax)
    _add_source_options(tax)
    add_common_options(tax)
    tax.set_defaults(run=run)

    rec = proto.add_parser(
        "reconstruction",
        help="reconstruction MSE per k-group (needs the decoder)",
        description="Mean squared error of decoder(mu) against the CLR profile, per k-group, "
        "on held-out rows.",
    )
    rec.add_argument("model", metavar="MODEL", help="a model folder or checkpoint .pt")
    rec.add_argument("dataset", metavar="DATASET", help="profile dataset (held-out rows)")
    rec.add_argument(
        "--max-rows",
        type=positive_int,
        default=50_000,
        metavar="N",
        help="seeded sample of N >= 1 rows (default 50000)",
    )
    _add_source_options(rec)
    add_common_options(rec)
    rec.set_defaults(run=run)

    clu = proto.add_parser(
        "clusters",
        help="cluster quality: GC spread, sizes, purity, completeness, ARI/AMI, genomes recovered",
        description="Judge a clustering: the GC spread of its clusters, their sizes and, with "
        "--labels, purity and completeness per rank, ARI/AMI, labels kept whole and genomes "
        "recovered (purity >= 0.95, completeness >= 0.9). --baseline clusters baselines "
        "with the same recipe for a side-by-side row.",
    )
    clu.add_argument(
        "clusters",
        metavar="CLUSTERS",
        help="a 'kmervae cluster' folder, or a clustering TSV (contig_id<TAB>cluster, or "
        "VAMB's clustername<TAB>contigname)",
    )
    add_clusters_options(clu)
    add_common_options(clu)
    clu.set_defaults(run=run, training_run=None)

    mat = proto.add_parser(
        "matrix",
        help="models x datasets for one protocol, as Markdown and JSON",
        description="Run one protocol for every model (or baseline) on every dataset and "
        "write OUT.md (headline figures) and OUT.json (everything). Taxonomy takes the modes "
        "of 'evaluate taxonomy': within each dataset, --exclude-same RANK, --reference REF "
        "--reference-labels REF.tsv, and --clustering.",
    )
    mat.add_argument("--models", nargs="+", required=True, metavar="MODEL", help=MODEL_HELP)
    mat.add_argument("--datasets", nargs="+", required=True, metavar="DATASET")
    mat.add_argument(
        "--protocol",
        choices=("fidelity", "taxonomy", "reconstruction", "clusters"),
        required=True,
        dest="matrix_protocol",
    )
    mat.add_argument(
        "-o", "--output", required=True, type=Path, metavar="OUT", help="write OUT.md and OUT.json"
    )
    add_neighbours_option(
        mat,
        "neighbour counts: fidelity's neighbours per query (one, default 50), taxonomy's "
        "counts (default 1,5,10,50), the clustering graph's k (one; default: the recipe's, "
        "or 50)",
        type=positive_int_list,
        metavar="K[,K...]",
    )
    _add_fidelity_options(mat, matrix=True)
    _add_taxonomy_options(mat, matrix=True)
    rec_group = mat.add_argument_group("reconstruction (matrix)")
    rec_group.add_argument(
        "--max-rows",
        type=positive_int,
        default=50_000,
        metavar="N",
        help="seeded sample of N >= 1 rows (default 50000)",
    )
    clu_group = mat.add_argument_group("clusters (matrix)")
    add_request_options(clu_group, matrix=True)
    clu_group.add_argument(
        "--min-length",
        type=non_negative_int,
        metavar="BP",
        help="cluster only held-out contigs at least this long (default: the request's)",
    )
    _add_source_options(mat, json_output=False)
    add_common_options(mat)
    mat.set_defaults(run=run)


# -- running -------------------------------------------------------------------------------


def _source(args: argparse.Namespace, spec: str) -> Any:
    from kmervae.evaluate.runner import Source

    return Source(
        spec=spec,
        fit=args.fit,
        fit_rows=args.fit_rows,
        run_dir=args.training_run,
        seed=args.seed,
        threads=args.threads or None,
        training_rows=getattr(args, "training_rows", "refuse"),
    )


def _taxonomy_request(args: argparse.Namespace) -> Any:
    from kmervae.evaluate.taxonomy import TaxonomyRequest

    return TaxonomyRequest(
        ks=tuple(args.ks),
        ranks=tuple(r.strip() for r in args.ranks.split(",")) if args.ranks else None,
        exclude_same=args.exclude_same,
        length_edges=tuple(args.length_bins),
        metric=args.metric,
        distance_threshold=args.distance_threshold,
    )


def _run_one(args: argparse.Namespace, protocol: str, spec: str, dataset: str, index: int) -> Any:
    from kmervae.evaluate import runner
    from kmervae.evaluate.matrix import cell_paths

    source = _source(args, spec)
    if protocol == "fidelity":
        return runner.run_fidelity(
            source,
            dataset,
            pool_size=args.pool_size,
            n_queries=args.queries,
            k=args.neighbours,
            metric=args.metric,
            n_bootstrap=args.bootstrap,
        )
    if protocol == "taxonomy":
        labels = args.labels
        per = getattr(args, "labels_per_dataset", None)
        if per:
            labels = per[index]
        if labels is None:
            raise KmervaeError("the taxonomy protocol needs --labels (or --labels-per-dataset)")
        clustering = args.clustering
        if clustering is not None and args.protocol == "matrix":
            clustering = cell_paths(clustering, [spec], [dataset])[spec, dataset]
        return runner.run_taxonomy(
            source,
            dataset,
            labels,
            _taxonomy_request(args),
            reference=args.reference,
            reference_labels=args.reference_labels,
            clustering=clustering,
            max_queries=args.max_queries,
        )
    if protocol == "clusters":
        per = getattr(args, "labels_per_dataset", None)
        return runner.run_cluster_quality(
            source,
            dataset,
            labels=per[index] if per else args.labels,
            ranks=_ranks(args),
            request=args.request_data,
            k=args.graph_k,
        )
    return runner.run_reconstruction(source, dataset, max_rows=args.max_rows)


def _ranks(args: argparse.Namespace) -> list[str] | None:
    return [r.strip() for r in args.ranks.split(",")] if args.ranks else None


def _check_before_work(args: argparse.Namespace) -> None:
    """Outputs that may not be replaced, and named inputs that do not exist, stop the
    command before any model or dataset is loaded."""
    from kmervae.evaluate.matrix import matrix_paths

    if args.protocol == "matrix":
        for path in matrix_paths(args.output):
            check_writable(path, args.force)
    elif args.json is not None:
        check_writable(args.json, args.force, stream_ok=True)
    run_dir = getattr(args, "training_run", None)
    if run_dir is not None and not (Path(run_dir) / "run.json").is_file():
        raise KmervaeError(f"{run_dir}: not a training run (no run.json)")
    named = [getattr(args, "dataset", None), *(getattr(args, "datasets", None) or [])]
    named += [getattr(args, "fit", None)]
    for path in named:
        if path is not None and not Path(path).exists():
            raise KmervaeError(f"{path}: no such dataset")


#: what -k/--neighbours means, and its default, in each protocol that takes it
_NEIGHBOUR_DEFAULTS: dict[str, Any] = {"fidelity": 50, "taxonomy": (1, 5, 10, 50), "clusters": None}


def _resolve_neighbours(args: argparse.Namespace) -> None:
    """Read -k/--neighbours for the protocol run: ``args.neighbours`` (fidelity: neighbours
    per query), ``args.ks`` (taxonomy: the counts scored) and ``args.graph_k`` (clusters: the
    clustering graph's k, None for the recipe's). The matrix reads a list for every protocol;
    fidelity and clusters take one count of it."""
    protocol = args.matrix_protocol if args.protocol == "matrix" else args.protocol
    given: Any = getattr(args, "k", None)
    if given is None:
        given = _NEIGHBOUR_DEFAULTS.get(protocol)
    if protocol == "taxonomy":
        args.ks = tuple(given)
        return
    if isinstance(given, tuple | list):
        if len(given) != 1:
            listed = ",".join(map(str, given))
            raise KmervaeError(f"-k/--neighbours {listed}: the {protocol} protocol takes one count")
        given = given[0]
    args.neighbours = args.graph_k = given


def run(args: argparse.Namespace) -> int:
    _resolve_neighbours(args)
    _check_before_work(args)
    attach_catalog(args)
    if args.threads and importlib.util.find_spec("torch") is not None:
        import torch

        torch.set_num_threads(args.threads)
    if args.protocol == "matrix":
        return _run_matrix(args)
    if args.protocol == "clusters":
        return _run_clusters(args)
    result = _run_one(args, args.protocol, args.model, args.dataset, 0)
    result["provenance"] = run_provenance(args.argv, args.seed)
    sys.stdout.write(format_result(result))
    if args.json is not None:
        write_json(args.json, result, args.force)
    return 0


def _run_matrix(args: argparse.Namespace) -> int:
    from kmervae.evaluate.matrix import evaluate_matrix, write_matrix

    protocol = args.matrix_protocol
    per = args.labels_per_dataset
    if per and len(per) != len(args.datasets):
        raise KmervaeError(
            f"--labels-per-dataset has {len(per)} files for {len(args.datasets)} datasets"
        )
    if protocol == "taxonomy":
        _check_matrix_taxonomy(args)
    args.request_data = None
    if protocol == "clusters":
        args.request_data = _check_matrix_clusters(args)
    results = evaluate_matrix(
        args.models,
        args.datasets,
        lambda model, dataset, i: _run_one(args, protocol, model, dataset, i),
    )
    md, js = write_matrix(
        args.output,
        protocol,
        args.models,
        args.datasets,
        results,
        provenance=run_provenance(args.argv, args.seed),
        overwrite=args.force,
    )
    sys.stdout.write(md.read_text())
    log.info("wrote %s and %s", md, js)
    failed = sum("error" in r for r in results)
    if failed:
        log.error("%d of %d evaluations failed (see %s)", failed, len(results), js)
        return 1
    return 0


def _check_matrix_taxonomy(args: argparse.Namespace) -> None:
    """Bad taxonomy options stop the matrix once, before any cell is computed."""
    from kmervae.evaluate.matrix import cell_paths
    from kmervae.evaluate.runner import check_taxonomy_modes

    if not (args.labels or args.labels_per_dataset):
        raise KmervaeError("--protocol taxonomy needs --labels or --labels-per-dataset")
    for labels in args.labels_per_dataset or [args.labels]:
        if not Path(labels).is_file():
            raise KmervaeError(f"{labels}: no such labels file")
    request = _taxonomy_request(args)
    check_taxonomy_modes(request, reference=args.reference, reference_labels=args.reference_labels)
    if args.clustering is not None:
        paths = cell_paths(args.clustering, args.models, args.datasets)
        missing = [p for p in dict.fromkeys(paths.values()) if not Path(p).is_file()]
        if missing:
            more = f" (and {len(missing) - 1} more)" if len(missing) > 1 else ""
            raise KmervaeError(f"{missing[0]}: no such clustering file{more}")


def _check_matrix_clusters(args: argparse.Namespace) -> dict[str, Any] | None:
    """Check the clusters options once, before any cell; returns the request to use."""
    from kmervae.evaluate.cluster_inputs import read_cluster_request

    for labels in args.labels_per_dataset or ([args.labels] if args.labels else []):
        if not Path(labels).is_file():
            raise KmervaeError(f"{labels}: no such labels file")
    request, k = (
        read_cluster_request(args.cluster_request) if args.cluster_request else (None, None)
    )
    args.graph_k = args.graph_k or k or 50
    if args.min_length is not None:
        from kmervae.evaluate.cluster_inputs import cluster_request

        request = cluster_request(request).to_dict()
        request["graph"]["min_length"] = args.min_length
        cluster_request(request)  # a negative length stops here
    return request


def _run_clusters(args: argparse.Namespace) -> int:
    from kmervae.evaluate.cluster_inputs import read_cluster_request
    from kmervae.evaluate.runner import run_clusters

    baselines = [_source(args, spec) for spec in baseline_specs(args.baselines or [])]
    request, k = (
        read_cluster_request(args.cluster_request) if args.cluster_request else (None, None)
    )
    result = run_clusters(
        args.clusters,
        clustering=args.clustering,
        store=args.store,
        dataset=args.dataset,
        labels=args.labels,
        ranks=_ranks(args),
        baselines=baselines,
        min_length=args.min_length,
        request=request,
        k=args.graph_k or k,
        threads=args.threads or None,
    )
    result["provenance"] = run_provenance(args.argv, args.seed)
    sys.stdout.write(format_clusters(result))
    if args.json is not None:
        write_json(args.json, result, args.force)
    failed = [row["name"] for row in result["rows"] if "error" in row]
    if failed:
        log.error("%d of %d clusterings failed: %s", len(failed), len(result["rows"]), failed)
        return 1
    return 0


# -- text output ---------------------------------------------------------------------------


def _fmt(value: float | None, digits: int = 3) -> str:
    return "nan" if value is None or value != value else f"{value:.{digits}f}"


def format_result(result: dict[str, Any]) -> str:
    """The human-readable report of one protocol result (pool size beside every score)."""
    rep = result["representation"]
    lines = [
        f"representation: {rep.get('name')} ({rep.get('kind', '?')}, dim {rep.get('dim', '?')})",
        f"dataset: {result['dataset']['path']} ({result['dataset']['n_rows']} rows); "
        f"held out: {result['held_out']}",
    ]
    protocol = result["protocol"]
    if protocol == "fidelity":
        pool = result["pool"]
        ci = result.get("ci", {})

        def with_ci(name: str, value: float, interval: list[float] | None) -> str:
            band = f" [{_fmt(interval[0])}, {_fmt(interval[1])}]" if interval else ""
            return f"{name} {_fmt(value)}{band} (pool {pool})"

        lines.append(
            f"queries {result['queries']}, neighbours {result['k']}, metric {result['metric']}, "
            f"seed {result.get('seed')}; CLR-MSE over k-groups {result.get('target_ks')}"
        )
        lines.append(with_ci("Spearman", result["spearman"], ci.get("spearman")))
        lines.append(with_ci("Pearson", result["pearson"], ci.get("pearson")))
        tops = ci.get("mean_clr_mse_top", {})
        for n, value in result["mean_clr_mse_top"].items():
            lines.append(with_ci(f"mean CLR-MSE top {n}", value, tops.get(n)))
        rnd = result["random"]
        lines.append(
            with_ci("mean CLR-MSE random pairs", rnd["mean_clr_mse"], ci.get("random_mean_clr_mse"))
        )
        lines.append(
            f"random pairs: Spearman {_fmt(rnd['spearman'])}, Pearson {_fmt(rnd['pearson'])} "
            f"(pool {pool})"
        )
    elif protocol == "taxonomy":
        lines += _format_taxonomy(result)
    else:
        lines.append(
            f"reconstruction MSE {_fmt(result['mse'], 4)} (x features "
            f"{_fmt(result['mse_x_features'], 1)}) on {result['rows']} rows"
        )
        lines += [f"  {k}-mers: {_fmt(v, 4)}" for k, v in result["mse_per_k"].items()]
    return "\n".join(lines) + "\n"


def _format_taxonomy(result: dict[str, Any]) -> list[str]:
    ks = [str(k) for k in result["ks"]]
    labels = result["labels"]
    lines = [
        f"mode: {result['mode']}; {result['queries']} queries, {result['candidates']} candidate "
        f"neighbours, metric {result['metric']}",
        f"labels: {labels['rows_without_labels']} rows without labels, "
        f"{labels['label_ids_not_in_dataset']} labelled ids not in the dataset",
        "| rank | " + " | ".join(f"@{k}" for k in ks) + " | queries |",
        "|---|" + "---|" * (len(ks) + 1),
    ]
    for rank in result["ranks"]:
        row = result["agreement"][rank]
        lines.append(
            f"| {rank} | " + " | ".join(_fmt(row[k]) for k in ks) + f" | {row['queries']} |"
        )
    unreachable = {r: n for r, n in result.get("unreachable", {}).items() if n}
    if unreachable:
        lines.append(
            "left out (no candidate neighbour carries their label): "
            + ", ".join(f"{r} {n}" for r, n in unreachable.items())
        )
    if result["by_length"]:
        lines.append("by contig length (@1):")
        lines.append("| length | queries | " + " | ".join(result["ranks"]) + " |")
        lines.append("|---|---|" + "---|" * len(result["ranks"]))
        for name, entry in result["by_length"].items():
            cells = [_fmt(entry[r]["1"]) if r in entry else "" for r in result["ranks"]]
            lines.append(f"| {name} | {entry['queries']} | " + " | ".join(cells) + " |")
    if "nearest_distance" in result:
        nd = result["nearest_distance"]
        lines.append(
            f"nearest reference distance: median {_fmt(nd['median'])}, 10 % {_fmt(nd['p10'])}, "
            f"90 % {_fmt(nd['p90'])}"
        )
    if "within_threshold" in result:
        wt = result["within_threshold"]
        lines.append(
            f"nearest reference closer than {wt['threshold']}: {_fmt(wt['fraction'])} of queries"
        )
    if "clustering" in result:
        for rank, scores in result["clustering"].items():
            if isinstance(scores, dict):
                lines.append(
                    f"clustering vs {rank}: ARI {_fmt(scores['ari'])}, AMI {_fmt(scores['ami'])} "
                    f"({scores['rows']} rows)"
                )
    return lines
