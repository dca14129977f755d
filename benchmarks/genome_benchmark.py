"""Embedding quality on real genomes: a trained model against every baseline, one table.

    python benchmarks/genome_benchmark.py [--genomes DIR] [--out DIR] [--epochs N] ...

1. Reads ``DIR/catalog.tsv`` (columns ``file``, ``organism``, ``genus``, ``family``,
   ``phylum/domain`` or ``phylum``) and splits the genome files BY GENOME into train and
   test (seeded): every species with several genomes gets genomes on both sides, and a
   fraction of the single-genome species goes to the test side as "new species".
2. Cuts each side into contigs of seeded random lengths (default 2-20 kbp) and profiles them
   (``kmervae chop``, ``kmervae profile`` as library calls); writes the labels TSVs
   (genome, species, genus, family, phylum per contig id). ``--train-copies N`` cuts every
   train genome N times with different seeds (more, overlapping training fragments) for
   the models; the test -> train reference and the PCA fit stay the single cut.
3. Trains a model of the reference architecture on the train contigs (CPU-sized recipe:
   ``--epochs``, cosine schedule, batch 256, learning rate 1e-3 by default).
4. Evaluates the model and the baselines (4-mer CLR, full CLR, PCA of the CLR at 32, 128 and
   the model's latent size, fitted on the train contigs) on the test contigs:

   - species@1 within test: nearest other test contig has the query's species (saturates:
     most neighbours come from the query's own genome);
   - the same excluding the query's own genome (queries whose species has another test
     genome);
   - Enterobacteriaceae species@1 (E. coli / Klebsiella / Salmonella / Shigella …), within
     test and excluding the own genome;
   - 2-5 kbp species@1 within test;
   - test -> train species@1 and genus@1: nearest train contig (queries whose species /
     genus exists in train);
   - fidelity Spearman on a pool of test contigs (pool size printed);
   - clusters of the test contigs (``kmervae cluster``'s code through ``cluster_vectors``:
     the k = 50 graph, then MCL and/or Leiden at ``--inflations`` / ``--resolutions``),
     scored against the genome labels by ``kmervae evaluate clusters``' code: clusters,
     median GC spread, genus ARI, species kept whole, genomes recovered (purity >= 0.95,
     completeness >= 0.9 by bp); a second table.

Prints one Markdown table and writes ``OUT/benchmark.json`` and ``OUT/benchmark.md``.
The data source is a parameter: any folder of genomes with such a catalog works.

``--repeats N`` (default 3) runs the whole chain N times, with seeds ``--seed``,
``--seed`` + 1, …: each run splits, cuts, trains and fits anew, in ``OUT/seed-S/`` (its
own tables and JSON, ``--reuse`` per folder). ``OUT/benchmark.md`` and
``OUT/benchmark.json`` then hold every figure as the mean ± standard error of the runs
with its min–max range, and a table of each representation's differences from PCA-32 in
the same run (paired: same split, same contigs), mean ± SE, marked where more than two
standard errors from 0. ``--repeats 1`` is one run straight into ``OUT``. A quick check
of the whole chain: ``--epochs 1 --hidden 64,32 --latent 16 --pool-size 300 --lengths
10000-20000 --cluster-methods leiden``.
"""

from __future__ import annotations

import argparse
import csv
import json
import logging
import os
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import numpy as np

from kmervae.cli._common import length_range

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_GENOMES = Path(os.environ.get("KMERVAE_GENOMES", ROOT.parent / "shared/data/genomes"))
RANKS = ("genome", "species", "genus", "family", "phylum")
_SPECIES_CUTS = (" subsp.", " pv.", " serovar", " biovar", " plasmid", " strain", " (")

log = logging.getLogger("genome_benchmark")


def species_of(organism: str) -> str:
    """The species part of an organism name ('' when unknown: 'uncultured …')."""
    name = organism.strip()
    if name.lower().startswith("uncultured") or not name:
        return ""
    for cut in _SPECIES_CUTS:
        i = name.find(cut)
        if i > 0:
            name = name[:i]
    return name.strip()


def file_stem(name: str) -> str:
    for suffix in (".gz", ".bz2", ".xz", ".zst"):
        name = name.removesuffix(suffix)
    return name.rsplit(".", 1)[0] if "." in name else name


def read_catalog(genomes: Path) -> list[dict[str, str]]:
    """One dict per genome file: file, genome, species, genus, family, phylum."""
    path = genomes / "catalog.tsv"
    if not path.is_file():
        sys.exit(f"{path}: no catalog (expected columns file, organism, genus, family, phylum)")
    out = []
    with open(path, newline="") as fh:
        for row in csv.DictReader(fh, delimiter="\t"):
            if not row.get("file") or not (genomes / row["file"]).is_file():
                continue
            out.append(
                {
                    "file": row["file"],
                    "genome": file_stem(row["file"]),
                    "species": species_of(row.get("organism", "")),
                    "genus": (row.get("genus") or "").strip(),
                    "family": (row.get("family") or "").strip(),
                    "phylum": (row.get("phylum/domain") or row.get("phylum") or "").strip(),
                }
            )
    return out


def split_by_genome(
    catalog: list[dict[str, str]], test_fraction: float, seed: int
) -> tuple[list[dict[str, str]], list[dict[str, str]]]:
    """Species with several genomes: about ``test_fraction`` of them (at least one, never
    all) go to test; single-genome species: each goes to test with that probability."""
    rng = np.random.default_rng(seed)
    by_species: dict[str, list[dict[str, str]]] = defaultdict(list)
    for entry in catalog:
        by_species[entry["species"] or entry["genome"]].append(entry)
    train, test = [], []
    for species in sorted(by_species):
        members = sorted(by_species[species], key=lambda e: e["file"])
        order = rng.permutation(len(members))
        if len(members) > 1:
            n_test = min(len(members) - 1, max(1, round(len(members) * test_fraction)))
        else:
            n_test = int(rng.random() < test_fraction)
        for rank, i in enumerate(order):
            (test if rank < n_test else train).append(members[i])
    return train, test


def side_paths(name: str, out: Path, copies: int = 1) -> tuple[Path, Path]:
    """(dataset, labels TSV) of one side; a train side cut several times is named apart."""
    stem = name if copies == 1 else f"{name}-x{copies}"
    return out / f"{stem}.kmv", out / f"{stem}.labels.tsv"


def copy_seed(seed: int, copy: int) -> int:
    """Seed of one cut of a side: the first cut keeps ``seed``, later cuts get their own."""
    return seed + 1000 * copy


def append_renamed(src: Path, dst: Any, suffix: str) -> None:
    """Append single-line FASTA ``src`` to open binary ``dst``, ``suffix`` added to each id."""
    tag = suffix.encode()
    with open(src, "rb") as fh:
        for line in fh:
            dst.write(line[:-1] + tag + b"\n" if line.startswith(b">") else line)


def build_side(
    name: str,
    entries: list[dict[str, str]],
    genomes: Path,
    out: Path,
    args: argparse.Namespace,
    copies: int = 1,
) -> tuple[Path, Path]:
    """Chop, profile and label one side; returns (dataset, labels TSV).

    ``copies`` > 1 cuts every genome that many times with different seeds: overlapping
    contigs, ids suffixed ``~cN`` from the second cut on, labels repeated.
    """
    from kmervae.io.chop import ChopSpec, chop_genomes
    from kmervae.kmers.profile import profile_fasta

    dataset, labels = side_paths(name, out, copies)
    fasta = dataset.with_suffix(".fa")
    lo, hi = args.lengths
    side_seed = args.seed + (0 if name == "train" else 1)
    by_file = {e["file"]: e for e in entries}
    with open(fasta, "wb") as dst, open(labels, "w") as label_out:
        label_out.write("id\t" + "\t".join(RANKS) + "\n")
        for copy in range(copies):
            suffix = "" if copy == 0 else f"~c{copy}"
            piece = out / f"{name}.cut{copy}.fa"
            table = out / f"{name}.cut{copy}.contigs.tsv"
            chop_genomes(
                [genomes / e["file"] for e in entries],
                piece,
                ChopSpec(lo, hi, lo, copy_seed(side_seed, copy)),
                table=table,
                prefix_ids=True,
                line_width=0,
                overwrite=True,
            )
            append_renamed(piece, dst, suffix)
            piece.unlink()
            with open(table, newline="") as fh:
                for row in csv.DictReader(fh, delimiter="\t"):
                    entry = by_file[row["file"]]
                    label_out.write(
                        row["contig_id"] + suffix + "\t" + "\t".join(entry[r] for r in RANKS) + "\n"
                    )
            table.unlink()
    profile_fasta([fasta], dataset, threads=args.threads or 2, overwrite=True)
    fasta.unlink()
    return dataset, labels


def train_model(train: Path, out: Path, args: argparse.Namespace, variant: dict[str, Any]) -> Path:
    from kmervae.model.config import VAEConfig
    from kmervae.model.train import RuntimeOptions, TrainConfig, train_vae

    config = VAEConfig(
        ks=variant["ks"],
        hidden=tuple(args.hidden),
        latent=variant["latent"],
        dropout=variant.get("dropout", 0.0),
        beta=args.beta,
        distance_weight=variant.get("distance_weight", args.distance_weight),
        distance_locality=args.distance_locality,
    )
    recipe = TrainConfig(
        epochs=variant.get("epochs", args.epochs),
        batch_size=args.batch_size,
        lr=args.lr,
        schedule="cosine",
        lr_warmup=2,
        kl_warmup=min(5, max(1, args.epochs // 6)),
        seed=args.seed,
        fidelity_every=0,
        eval_train_rows=2000,
        noise_fraction=variant.get("noise_fraction", 0.0),
        noise_min_length=args.noise_lengths[0],
        noise_max_length=args.noise_lengths[1],
        consistency_weight=variant.get("consistency_weight", 0.0),
    )
    run = out / f"run-{variant['name']}-z{variant['latent']}"
    started = time.perf_counter()
    summary = train_vae(
        train,
        run,
        config,
        recipe,
        overwrite=True,
        runtime=RuntimeOptions(device="cpu", threads=args.threads),
    )
    log.info(
        "%s: %d epochs in %.0f s, best validation loss %.2f at epoch %s",
        variant["name"],
        summary.epochs_run,
        time.perf_counter() - started,
        summary.best_val_loss,
        summary.best_epoch,
    )
    return summary.model_dir


def evaluate_all(
    specs: list[tuple[str, str]],
    train: Path,
    test: Path,
    train_labels: Path,
    test_labels: Path,
    args: argparse.Namespace,
) -> list[dict[str, Any]]:
    """Every slice of the table for every (label, spec)."""
    from kmervae.evaluate.fidelity import evaluate_fidelity
    from kmervae.evaluate.labels import align_labels, read_labels
    from kmervae.evaluate.representations import open_representation, represent_rows
    from kmervae.evaluate.taxonomy import TaxonomyRequest, evaluate_agreement
    from kmervae.io.dataset import open_dataset

    train_ds, test_ds = open_dataset(train), open_dataset(test)
    test_table = read_labels(test_labels)
    test_aligned = align_labels(test_table, test_ds.ids())
    train_aligned = align_labels(
        read_labels(train_labels), train_ds.ids(), vocab=test_aligned.vocab, what="train"
    )
    lengths = test_ds.lengths()
    family = test_aligned.column("family")
    entero_code = test_aligned.vocab["family"].get("Enterobacteriaceae", -2)
    entero = np.flatnonzero(family == entero_code)
    ranks = ("species", "genus")
    rows = []
    for label, spec in specs:
        started = time.perf_counter()
        rep = open_representation(
            spec, test_ds.layout, fit_dataset=train_ds, seed=args.seed, threads=args.threads
        )
        vectors = represent_rows(rep, test_ds, np.arange(test_ds.n_rows))
        ref_vectors = represent_rows(rep, train_ds, np.arange(train_ds.n_rows))
        within = evaluate_agreement(vectors, test_aligned, lengths, TaxonomyRequest(ranks=ranks))
        excl = evaluate_agreement(
            vectors, test_aligned, lengths, TaxonomyRequest(ranks=ranks, exclude_same="genome")
        )
        ent = evaluate_agreement(
            vectors, test_aligned, lengths, TaxonomyRequest(ranks=ranks), query_rows=entero
        )
        ent_excl = evaluate_agreement(
            vectors,
            test_aligned,
            lengths,
            TaxonomyRequest(ranks=ranks, exclude_same="genome"),
            query_rows=entero,
        )
        ref = evaluate_agreement(
            vectors,
            test_aligned,
            lengths,
            TaxonomyRequest(ranks=ranks),
            reference=ref_vectors,
            reference_labels=train_aligned,
        )
        fid = evaluate_fidelity(
            rep,
            test_ds,
            np.arange(test_ds.n_rows),
            pool_size=min(args.pool_size, test_ds.n_rows),
            seed=args.seed,
            n_bootstrap=200,
        )
        clusters = [] if args.skip_clusters else cluster_rows(vectors, test_ds, test_aligned, args)
        short = within["by_length"].get("2-5 kbp", {})
        rows.append(
            {
                "representation": label,
                "dim": rep.dim,
                "species@1 test": within["agreement"]["species"]["1"],
                "species@1 test, other genomes": excl["agreement"]["species"]["1"],
                "other-genome queries": excl["agreement"]["species"]["queries"],
                "Entero species@1": ent["agreement"]["species"]["1"],
                "Entero species@1, other genomes": ent_excl["agreement"]["species"]["1"],
                "2-5 kbp species@1": short.get("species", {}).get("1", float("nan")),
                "2-5 kbp queries": short.get("queries", 0),
                "test->train species@1": ref["agreement"]["species"]["1"],
                "test->train genus@1": ref["agreement"]["genus"]["1"],
                "test->train genus queries": ref["agreement"]["genus"]["queries"],
                "fidelity Spearman": fid["spearman"],
                "fidelity CI": fid.get("ci", {}).get("spearman"),
                "pool": fid["pool"],
                "seconds": time.perf_counter() - started,
                "clusters": clusters,
                "details": {"within": within, "exclude_genome": excl, "reference": ref},
            }
        )
        log.info("%s evaluated in %.0f s", label, rows[-1]["seconds"])
    return rows


def cluster_request(args: argparse.Namespace) -> Any:
    from kmervae.cluster.graph import GraphOptions
    from kmervae.cluster.run import ClusterRequest

    return ClusterRequest(
        methods=tuple(args.cluster_methods.split(",")),
        graph=GraphOptions(max_distance=args.cluster_max_distance),
        inflations=args.inflations,
        resolutions=args.resolutions,
    )


def cluster_rows(
    vectors: np.ndarray, test_ds: Any, labels: Any, args: argparse.Namespace
) -> list[dict[str, Any]]:
    """Every clustering of the request, of the test contigs in this representation, scored
    against the genome labels."""
    from kmervae.cluster.run import cluster_vectors
    from kmervae.evaluate.clusters import cluster_quality

    lengths, gc, ids = test_ds.lengths(), test_ds.gc(), test_ds.ids()
    found = cluster_vectors(
        vectors, lengths, cluster_request(args), k=args.cluster_k, threads=args.threads
    )
    out = []
    for name, clusters in found:
        q = cluster_quality(clusters, lengths, gc, labels=labels, ids=ids)
        out.append(
            {
                "clustering": name,
                "clusters": q["sizes"]["clusters"],
                "singletons": q["sizes"]["singletons"],
                "median GC spread": q["gc_spread"]["median"],
                "within 5 pp": q["gc_spread"]["share_within"],
                "genus ARI": q["labels"]["genus"]["ari"],
                "species kept whole": q["labels"]["species"]["kept_whole"]["share"],
                "genomes recovered": q["labels"]["genome"]["recovered"]["recovered"],
                "genomes": q["labels"]["genome"]["recovered"]["labels"],
                "details": q,
            }
        )
    return out


CLUSTER_COLUMNS = (
    ("clusters", "clusters", "{:d}"),
    ("singletons", "singletons", "{:d}"),
    ("median GC spread", "median GC spread (pp)", "{:.2f}"),
    ("within 5 pp", "clusters within 5 pp", "{:.3f}"),
    ("genus ARI", "genus ARI", "{:.3f}"),
    ("species kept whole", "species kept whole", "{:.3f}"),
)


def cluster_table(rows: list[dict[str, Any]]) -> str:
    head = [
        "representation",
        "clustering",
        *[t for _, t, _ in CLUSTER_COLUMNS],
        "genomes recovered",
    ]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for row in rows:
        for c in row.get("clusters", []):
            cells = [f"{row['representation']} ({row['dim']})", c["clustering"]]
            cells += [fmt.format(c[key]) for key, _, fmt in CLUSTER_COLUMNS]
            cells.append(f"{c['genomes recovered']} of {c['genomes']}")
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


COLUMNS = (
    ("species@1 test", "species@1 within test"),
    ("species@1 test, other genomes", "species@1 test, excl. own genome"),
    ("Entero species@1", "Enterobacteriaceae species@1"),
    ("Entero species@1, other genomes", "Entero. species@1, excl. own genome"),
    ("2-5 kbp species@1", "2-5 kbp species@1"),
    ("test->train species@1", "test->train species@1"),
    ("test->train genus@1", "test->train genus@1"),
)


def markdown_table(rows: list[dict[str, Any]]) -> str:
    head = ["representation", *[title for _, title in COLUMNS], "fidelity Spearman (pool)"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for row in rows:
        cells = [f"{row['representation']} ({row['dim']})"]
        cells += [f"{row[key]:.3f}" for key, _ in COLUMNS]
        cells.append(f"{row['fidelity Spearman']:.3f} ({row['pool']})")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _float_list(text: str) -> tuple[float, ...]:
    return tuple(float(x) for x in text.split(","))


def _int_list(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in text.split(","))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--genomes", type=Path, default=DEFAULT_GENOMES)
    parser.add_argument("--out", type=Path, default=Path("genome_benchmark_out"))
    parser.add_argument("--lengths", type=length_range, default=(2000, 20000), metavar="MIN-MAX")
    parser.add_argument("--test-fraction", type=float, default=0.3)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--beta", type=float, default=0.05)
    parser.add_argument(
        "--distance-weight",
        type=float,
        default=0.0,
        help="distance-preserving loss term for every variant (default 0; the 'distance' "
        "variant uses 1 when this is 0)",
    )
    parser.add_argument("--distance-locality", type=float, default=0.1)
    parser.add_argument("--hidden", type=_int_list, default=(1024, 512))
    parser.add_argument(
        "--latent",
        type=_int_list,
        default=(384,),
        metavar="N[,N...]",
        help="latent size; several sizes train every variant at each (a sweep); the PCA "
        "baselines include PCA at each size (default 384)",
    )
    parser.add_argument(
        "--variants",
        default="reference",
        help="models to train, comma-separated: reference (6..1-mers), five (the research "
        "preset: 5..1-mers, dropout 0.1), distance (6..1-mers with the distance-preserving "
        "loss term), noise (distance with length-noise views: denoising), consistency "
        "(noise with the consistency term)",
    )
    parser.add_argument(
        "--noise-fraction",
        type=float,
        default=0.5,
        help="share of each batch seen as length-noise views in the noise and consistency "
        "variants (default 0.5)",
    )
    parser.add_argument(
        "--noise-lengths",
        type=length_range,
        default=(1000, 10000),
        metavar="MIN-MAX",
        help="simulated lengths of the views, log-uniform (default 1000-10000)",
    )
    parser.add_argument(
        "--consistency-weight",
        type=float,
        default=1.0,
        help="the consistency variant's weight (default 1)",
    )
    parser.add_argument(
        "--sigma",
        action="store_true",
        help="also evaluate every trained model's (mu, sigma) under the 2-Wasserstein "
        "distance (the w2:MODEL representation)",
    )
    parser.add_argument(
        "--model",
        action="append",
        default=[],
        metavar="LABEL=PATH",
        help="also evaluate an existing model (repeatable)",
    )
    parser.add_argument(
        "--no-baselines", action="store_true", help="evaluate the models only (no baselines)"
    )
    parser.add_argument("--pool-size", type=int, default=50_000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--train-copies",
        type=int,
        default=1,
        metavar="N",
        help="train the models on every train genome cut N times with different seeds "
        "(overlapping contigs, same labels); the test side, the test->train reference and "
        "the PCA fits keep the single cut",
    )
    parser.add_argument("--reuse", action="store_true", help="reuse datasets already in --out")
    parser.add_argument(
        "--repeats",
        type=int,
        default=3,
        help="whole runs with seeds SEED, SEED+1, …, each in OUT/seed-S; every figure is "
        "printed as mean ± standard error and min–max range of the runs (default 3; 1: one run "
        "in OUT)",
    )
    clusters = parser.add_argument_group("clusters of the test contigs")
    clusters.add_argument("--skip-clusters", action="store_true")
    clusters.add_argument("--cluster-methods", default="mcl,leiden", help="mcl, leiden or both")
    clusters.add_argument("--inflations", type=_float_list, default=(1.4, 2.0, 3.0))
    clusters.add_argument("--resolutions", type=_float_list, default=(1.0,))
    clusters.add_argument("--cluster-k", type=int, default=50, help="graph neighbours")
    clusters.add_argument(
        "--cluster-max-distance", type=float, help="drop longer edges (default: none)"
    )
    args = parser.parse_args(argv)
    if args.train_copies < 1:
        parser.error("--train-copies must be at least 1")
    if args.repeats < 1:
        parser.error("--repeats must be at least 1")
    for key in filter(None, args.variants.split(",")):
        if key not in VARIANT_KEYS:
            parser.error(f"unknown variant {key!r} (use {', '.join(VARIANT_KEYS)})")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if args.repeats == 1:
        run_once(args)
        return 0
    runs = []
    for r in range(args.repeats):
        seed = args.seed + r
        one = argparse.Namespace(**{**vars(args), "seed": seed, "out": args.out / f"seed-{seed}"})
        runs.append(run_once(one))
    write_summary(runs, args)
    return 0


VARIANT_KEYS = ("reference", "five", "distance", "noise", "consistency")


def run_once(args: argparse.Namespace) -> dict[str, Any]:
    """One whole run (split, cut, train, evaluate) with ``args.seed`` into ``args.out``;
    prints and writes its tables, returns its header, rows and counts."""
    started = time.perf_counter()
    out = args.out
    out.mkdir(parents=True, exist_ok=True)

    catalog = read_catalog(args.genomes)
    train_entries, test_entries = split_by_genome(catalog, args.test_fraction, args.seed)
    (out / "split.json").write_text(
        json.dumps(
            {
                "train": [e["file"] for e in train_entries],
                "test": [e["file"] for e in test_entries],
            },
            indent=2,
        )
    )
    log.info("%d train genomes, %d test genomes", len(train_entries), len(test_entries))
    # "train" (cut once) is the test->train reference and the PCA fit whatever
    # --train-copies says, so those columns compare across runs; models train on "models"
    sides = {}
    for name, entries, copies in (
        ("train", train_entries, 1),
        ("models", train_entries, args.train_copies),
        ("test", test_entries, 1),
    ):
        side = "train" if name == "models" else name
        if name == "models" and copies == 1:
            sides[name] = sides["train"]
            continue
        dataset, labels = side_paths(side, out, copies)
        if not (args.reuse and dataset.exists() and labels.exists()):
            dataset, labels = build_side(side, entries, args.genomes, out, args, copies)
        sides[name] = (dataset, labels)
    from kmervae.io.dataset import open_dataset

    n_train, n_test = open_dataset(sides["models"][0]).n_rows, open_dataset(sides["test"][0]).n_rows
    log.info(
        "%d train contigs, %d test contigs (%.0f s)", n_train, n_test, time.perf_counter() - started
    )

    from kmervae.model.config import MODEL_PRESETS

    research = MODEL_PRESETS["research"]
    distance = {"ks": (6, 5, 4, 3, 2, 1), "distance_weight": args.distance_weight or 1.0}
    noise = f"views {args.noise_fraction:g} at {args.noise_lengths[0]}-{args.noise_lengths[1]}"
    variants = {
        "reference": {"ks": (6, 5, 4, 3, 2, 1), "label": "VAE 6..1-mers"},
        "five": {
            "ks": research.ks,
            "dropout": research.dropout,
            "label": f"VAE {research.ks[0]}..{research.ks[-1]}-mers, dropout {research.dropout:g}",
        },
        "distance": {**distance, "label": "VAE 6..1-mers"},
        "noise": {
            **distance,
            "noise_fraction": args.noise_fraction,
            "label": f"VAE 6..1-mers, {noise}",
        },
        "consistency": {
            **distance,
            "noise_fraction": args.noise_fraction,
            "consistency_weight": args.consistency_weight,
            "label": f"VAE 6..1-mers, {noise}, consistency {args.consistency_weight:g}",
        },
    }
    specs: list[tuple[str, str]] = []
    for latent in args.latent:
        for key in filter(None, args.variants.split(",")):
            variant = {**variants[key], "name": key, "latent": latent}
            model_dir = train_model(sides["models"][0], out, args, variant)
            beta = "" if args.beta == 0.05 else f", beta {args.beta:g}"
            weight = variant.get("distance_weight", args.distance_weight)
            if weight:
                beta += f", distance {weight:g} (locality {args.distance_locality:g})"
            size = f", latent {latent}" if len(args.latent) > 1 else ""
            label = f"{variant['label']}, {args.epochs} ep{beta}{size}"
            specs.append((label, str(model_dir)))
            if args.sigma:
                specs.append((f"{label}, W2 of (mu, sigma)", f"w2:{model_dir}"))
    for item in args.model:
        label, _, path = item.partition("=")
        specs.append((label, path))
    specs += (
        []
        if args.no_baselines
        else [
            ("4-mer CLR", "tetra"),
            ("CLR 6..1-mers", "clr"),
            ("PCA-32 of CLR", "pca-32"),
            ("PCA-128 of CLR", "pca-128"),
            *[(f"PCA-{n} of CLR", f"pca-{n}") for n in sorted(set(args.latent) - {32, 128})],
        ]
    )
    (train_ds, train_labels), (test_ds, test_labels) = sides["train"], sides["test"]
    rows = evaluate_all(specs, train_ds, test_ds, train_labels, test_labels, args)
    table = markdown_table(rows)
    if not args.skip_clusters:
        request = cluster_request(args)
        table += (
            f"\n\nClusters of the test contigs (k = {args.cluster_k}, in-degree cap "
            f"{request.graph.max_in_degree}, weight 1/(d + {request.graph.delta:g}), "
            f"max distance {request.graph.max_distance}):\n\n" + cluster_table(rows)
        )
    from kmervae.cores import cpu_name

    machine = f"{cpu_name()}, {os.cpu_count()} cores"
    header = (
        f"{len(test_entries)} test genomes ({n_test} contigs of {args.lengths[0]}-"
        f"{args.lengths[1]} bp), {len(train_entries)} train genomes ({n_train} contigs"
        f"{'' if args.train_copies == 1 else f', each genome cut {args.train_copies} times; '}"
        f"{'' if args.train_copies == 1 else 'test->train and PCA use the first cut'}); "
        f"seed {args.seed}; {machine}; {time.perf_counter() - started:.0f} s in all"
    )
    print(header)
    print(table)
    (out / "benchmark.md").write_text(header + "\n\n" + table + "\n")
    (out / "benchmark.json").write_text(
        json.dumps(
            {
                "header": header,
                "args": vars(args) | {"genomes": str(args.genomes), "out": str(args.out)},
                "rows": rows,
            },
            indent=2,
            default=str,
        )
    )
    return {
        "seed": args.seed,
        "header": header,
        "rows": rows,
        "train genomes": len(train_entries),
        "test genomes": len(test_entries),
        "train contigs": n_train,
        "test contigs": n_test,
        "seconds": time.perf_counter() - started,
    }


def mean_se(values: list[float]) -> tuple[float, float]:
    """Mean and standard error (sample standard deviation / sqrt(n); 0 for one value)."""
    got = np.asarray(values, dtype=np.float64)
    if len(got) < 2:
        return float(got.mean()), 0.0
    return float(got.mean()), float(got.std(ddof=1) / np.sqrt(len(got)))


def _cell(values: list[float], fmt: str) -> str:
    """``mean ± SE (min–max)`` of one cell over the runs (the value alone for one run);
    runs where the figure is NaN (no queries in that slice) are left out and counted."""
    finite = [v for v in values if v == v]
    if not finite:
        return "nan"
    mean, se = mean_se(finite)
    text = fmt.format(mean)
    low, high = fmt.format(min(finite)), fmt.format(max(finite))
    if len(finite) > 1:
        text += f" ± {fmt.format(se)}"
        if low != high:
            text += f" ({low}–{high})"
    if len(finite) < len(values):
        text += f" [{len(finite)} of {len(values)} runs]"
    return text


#: the baseline every representation is compared with, run by run, in the paired table
PAIRED_WITH = "PCA-32 of CLR"


def paired_table(runs: list[dict[str, Any]], reference: str = PAIRED_WITH) -> str:
    """Per representation and slice: its figure minus ``reference``'s in the same run
    (same split, same contigs), as mean ± SE over the runs; ``*`` marks a mean more than two
    standard errors from 0 (with at least 3 runs). Empty when ``reference`` is absent."""
    labels = [row["representation"] for row in runs[0]["rows"]]
    if reference not in labels:
        return ""
    keys = [*COLUMNS, ("fidelity Spearman", "fidelity Spearman")]
    head = ["representation", *[title for _, title in keys]]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for label in labels:
        if label == reference:
            continue
        cells = [label]
        for key, _ in keys:
            diffs = []
            for run in runs:
                rows = {r["representation"]: r for r in run["rows"]}
                d = rows[label][key] - rows[reference][key]
                if d == d:
                    diffs.append(d)
            if not diffs:
                cells.append("nan")
                continue
            mean, se = mean_se(diffs)
            mark = "*" if len(diffs) >= 3 and abs(mean) > 2 * se else ""
            cells.append(f"{mean:+.3f} ± {se:.3f}{mark}" if len(diffs) > 1 else f"{mean:+.3f}")
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def summary_tables(runs: list[dict[str, Any]], args: argparse.Namespace) -> str:
    """The main table, the paired differences from PCA-32 and the clusters table, every
    figure as mean ± SE (min–max) over ``runs`` (matched by representation and
    clustering)."""
    labels = [row["representation"] for row in runs[0]["rows"]]
    by_label = {
        label: [next(r for r in run["rows"] if r["representation"] == label) for run in runs]
        for label in labels
    }
    head = ["representation", *[title for _, title in COLUMNS], "fidelity Spearman (pool)"]
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for label, rows in by_label.items():
        cells = [f"{label} ({rows[0]['dim']})"]
        cells += [_cell([r[key] for r in rows], "{:.3f}") for key, _ in COLUMNS]
        pools = sorted({r["pool"] for r in rows})
        pool = str(pools[0]) if len(pools) == 1 else f"{pools[0]}–{pools[-1]}"
        cells.append(f"{_cell([r['fidelity Spearman'] for r in rows], '{:.3f}')} ({pool})")
        lines.append("| " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    paired = paired_table(runs) if len(runs) > 1 else ""
    if paired:
        text += (
            f"\n\nMinus {PAIRED_WITH} in the same run (same split and contigs), mean ± SE over "
            "the runs; * more than two standard errors from 0:\n\n" + paired
        )
    if args.skip_clusters:
        return text
    head = ["representation", "clustering", *[t for _, t, _ in CLUSTER_COLUMNS]]
    head.append("genomes recovered")
    lines = ["| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    for label, rows in by_label.items():
        for c in rows[0].get("clusters", []):
            name = c["clustering"]
            found = [next(x for x in r["clusters"] if x["clustering"] == name) for r in rows]
            cells = [f"{label} ({rows[0]['dim']})", name]
            for key, _, fmt in CLUSTER_COLUMNS:
                cells.append(_cell([x[key] for x in found], fmt.replace(":d", ":.0f")))
            cells.append(
                _cell([x["genomes recovered"] for x in found], "{:.0f}")
                + f" of {_cell([x['genomes'] for x in found], '{:.0f}')}"
            )
            lines.append("| " + " | ".join(cells) + " |")
    return text + "\n\nClusters of the test contigs:\n\n" + "\n".join(lines)


def write_summary(runs: list[dict[str, Any]], args: argparse.Namespace) -> None:
    """Print and write ``OUT/benchmark.md`` and ``OUT/benchmark.json``: every figure as the
    mean ± SE (min–max) over the runs, the runs' own headers below."""
    from _timing import load_average

    from kmervae.cores import cpu_name

    def counts(key: str) -> str:
        return _cell([run[key] for run in runs], "{:.0f}")

    seeds = [run["seed"] for run in runs]
    header = (
        f"Mean ± standard error (min–max) over {len(runs)} runs, seeds "
        f"{seeds[0]}–{seeds[-1]} (each run splits, cuts and trains anew): "
        f"{counts('test genomes')} test genomes "
        f"({counts('test contigs')} contigs), {counts('train genomes')} train genomes "
        f"({counts('train contigs')} contigs); {cpu_name()}, {os.cpu_count()} cores; "
        f"{_cell([run['seconds'] for run in runs], '{:.0f}')} s a run; {load_average()} at "
        "the end"
    )
    table = summary_tables(runs, args)
    print()
    print(header)
    print(table)
    out = args.out
    runs_text = "\n".join(f"- seed {run['seed']}: {run['header']}" for run in runs)
    (out / "benchmark.md").write_text(f"{header}\n\n{table}\n\nThe runs:\n\n{runs_text}\n")
    (out / "benchmark.json").write_text(
        json.dumps(
            {
                "header": header,
                "args": vars(args) | {"genomes": str(args.genomes), "out": str(args.out)},
                "table": table,
                "runs": [
                    {"seed": run["seed"], "folder": f"seed-{run['seed']}", "header": run["header"]}
                    for run in runs
                ],
            },
            indent=2,
            default=str,
        )
    )


if __name__ == "__main__":
    sys.exit(main())
