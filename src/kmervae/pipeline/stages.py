"""The stages of a pipeline: the command line of each, what it reads and what it writes, and
whether what it wrote is complete.

A stage is one or two runs of an existing command (``kmervae profile``, ``kmervae train`` …)
with the words a :class:`Stage` holds: the pipeline never does a stage's work itself, so each
stage checks its input exactly as the command does.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kmervae.errors import InputError, KmervaeError
from kmervae.evaluate import BASELINE_HELP
from kmervae.kmers.layout import FEATURE_LAYOUT
from kmervae.pipeline.config import STAGE_COMMANDS, StageOptions, long_options, option_argv
from kmervae.provenance import file_sha256

#: the feature layout ``kmervae profile`` writes, which a given model must read
PROFILE_LAYOUT = FEATURE_LAYOUT

#: where each stage writes, inside the pipeline's folder
OUTPUT_NAMES = {
    "profile": "profiles",
    "train": "train",
    "embed": "embeddings",
    "index": "store",
    "knn": "graph",
    "cluster": "clusters",
    "map": "map",
    "compare": "compare",
    "report": "report.html",
}
#: the evaluation results, ``NAME.json`` and ``NAME.md`` each
QUALITY, TAXONOMY = "quality", "taxonomy"

#: the manifest of each output folder: (file, format name, what it is)
_MANIFESTS = {
    "profile": ("manifest.json", "kmervae-profiles", "profile dataset"),
    "embed": ("manifest.json", "kmervae-embeddings", "embedding store"),
    "index": ("manifest.json", "kmervae-index", "index store"),
    "knn": ("manifest.json", "kmervae-knn-graph", "k-NN graph"),
    "cluster": ("manifest.json", "kmervae-clusters", "clusters folder"),
    "map": ("manifest.json", "kmervae-map", "map folder"),
    "compare": ("manifest.json", "kmervae-compare", "comparison folder"),
}
#: the option groups of ``evaluate matrix`` that belong to one protocol only
_PROTOCOL_GROUPS = {
    "fidelity": "fidelity protocol",
    "taxonomy": "taxonomy protocol",
    "reconstruction": "reconstruction (matrix)",
    "clusters": "clusters (matrix)",
}


@dataclass
class Stage:
    """One stage: its command lines (without ``--force``, ``--resume``, ``-v``/``-q``, which
    the runner adds), its outputs, the inputs whose checksums decide whether it is still up
    to date (role -> path), the stages whose outputs it reads, and ``incomplete``, which says
    why its outputs are not usable (None when they are)."""

    name: str
    commands: list[list[str]]
    outputs: list[Path]
    inputs: dict[str, Path]
    depends: tuple[str, ...]
    incomplete: Callable[[], str | None]
    resumable: Callable[[], bool] = field(default=lambda: False)


@dataclass(frozen=True)
class Request:
    """What a pipeline is asked to do: absolute paths, and the merged options of every
    stage (:mod:`kmervae.pipeline.config`)."""

    fastas: tuple[Path, ...]
    output: Path
    model: Path | None
    options: StageOptions
    latent: int


def model_fingerprint(path: Path) -> str:
    """SHA-256 of the weights of a model (what embedding stores record as its fingerprint):
    ``model.safetensors`` of a VAE folder, ``pca.npz`` of a PCA folder, or the file itself
    (a checkpoint ``.pt`` or an ``.onnx``)."""
    from kmervae.model.config import read_model_folder
    from kmervae.model.pca_folder import ARRAYS_FILE

    if path.is_dir():
        kind = read_model_folder(path)["kind"]
        weights = path / (ARRAYS_FILE if kind == "pca" else "model.safetensors")
        if not weights.is_file():
            raise InputError(f"{path}: the model folder has no {weights.name}")
        return file_sha256(weights)
    return file_sha256(path)


def check_model(path: Path) -> int:
    """Open the model a pipeline was given and check that it reads the profiles the
    pipeline writes; returns its latent size. One line naming the model if not."""
    from kmervae.model.embed import load_encoder

    encoder = load_encoder(path, device="cpu", threads=1)
    config = encoder.config
    try:
        PROFILE_LAYOUT.subset_columns(tuple(config.ks))
    except ValueError:
        raise InputError(
            f"{path}: the model reads k-groups {','.join(map(str, config.ks))} "
            f"({config.n_features} features), which the profiles (k-groups "
            f"{','.join(map(str, PROFILE_LAYOUT.ks))}, {PROFILE_LAYOUT.n_features} features) "
            "do not hold: another feature layout"
        ) from None
    return int(config.latent)


def input_checksum(path: Path) -> str | None:
    """What identifies an input: the weights of a model folder, the manifest of an output
    folder, the bytes of a file; None when it is missing or unreadable."""
    try:
        if path.is_dir():
            if (path / "config.json").is_file():
                return model_fingerprint(path)
            if (path / "run.json").is_file():  # a training run
                return file_sha256(path / "run.json")
            return file_sha256(path / "manifest.json")
        return file_sha256(path)
    except (OSError, KmervaeError):
        return None


def _manifest_incomplete(folder: Path, stage: str) -> str | None:
    from kmervae.io.manifest import read_json_manifest

    name, fmt, what = _MANIFESTS[stage]
    if not folder.exists():
        return "no output yet"
    try:
        read_json_manifest(folder / name, fmt, 1 << 30, what)
    except KmervaeError:
        return "output incomplete"
    return None


def _train_incomplete(run_dir: Path) -> str | None:
    from kmervae.model.config import read_model_folder

    if not run_dir.exists():
        return "no output yet"
    try:
        read_model_folder(run_dir / "model")
    except KmervaeError:
        return "output incomplete"
    if not (run_dir / "run.json").is_file() or not (run_dir / "model/model.safetensors").is_file():
        return "output incomplete"
    return None


def _json_incomplete(files: Sequence[Path]) -> str | None:
    for path in files:
        if not path.exists():
            return "no output yet"
        try:
            record = json.loads(path.read_text())
        except (OSError, ValueError):
            return "output incomplete"
        if not isinstance(record, dict) or not isinstance(record.get("results"), list):
            return "output incomplete"
        if any(isinstance(r, dict) and "error" in r for r in record["results"]):
            return "output incomplete"
    return None


def _file_incomplete(path: Path) -> str | None:
    if not path.exists():
        return "no output yet"
    return None if path.is_file() and path.stat().st_size > 0 else "output incomplete"


def stage_argv(
    parser: argparse.ArgumentParser,
    stage: str,
    options: Mapping[str, Any],
    where: str,
    *,
    keep: Callable[[argparse.Action], bool] = lambda action: True,
) -> list[str]:
    """The option words of a stage, in a stable (sorted) order."""
    known = long_options(parser)
    words: list[str] = []
    for key in sorted(options):
        if keep(known[key]):
            words += option_argv(parser, key, options[key], f"{where} [{stage}]")
    return words


def _protocol_filter(parser: argparse.ArgumentParser, protocol: str) -> Callable[[Any], bool]:
    """Options of ``evaluate matrix`` that ``protocol`` reads: those of no protocol group, or
    of its own."""
    mine = {
        id(a)
        for g in parser._action_groups
        if g.title == _PROTOCOL_GROUPS[protocol]
        for a in g._group_actions
    }
    theirs = {
        id(a)
        for g in parser._action_groups
        if g.title in _PROTOCOL_GROUPS.values() and g.title != _PROTOCOL_GROUPS[protocol]
        for a in g._group_actions
    }
    return lambda action: id(action) in mine or id(action) not in theirs


def plan_stages(
    request: Request, parsers: Mapping[str, argparse.ArgumentParser], where: str
) -> list[Stage]:
    """The stages to run, in order: train only without a model, evaluate's taxonomy with
    labels, compare with samples and two groups, report where this kmervae has it."""
    out, opts = request.output, request.options
    path = {stage: out / name for stage, name in OUTPUT_NAMES.items()}
    model = request.model if request.model is not None else path["train"] / "model"
    clusters_tsv = path["cluster"] / "clusters.tsv"

    def words(stage: str, **kw: Any) -> list[str]:
        return stage_argv(parsers[stage], stage, opts.get(stage, {}), where, **kw)

    def cmd(stage: str) -> list[str]:
        return list(STAGE_COMMANDS[stage])

    fasta_inputs = {f"FASTA {i + 1}": f for i, f in enumerate(request.fastas)}
    stages = [
        Stage(
            "profile",
            [
                cmd("profile")
                + [str(f) for f in request.fastas]
                + ["-o", str(path["profile"]), "--prefix-ids"]
                + words("profile")
            ],
            [path["profile"]],
            fasta_inputs,
            (),
            lambda: _manifest_incomplete(path["profile"], "profile"),
        )
    ]
    if request.model is None:
        run_dir = path["train"]
        stages.append(
            Stage(
                "train",
                [[*cmd("train"), str(path["profile"]), "-o", str(run_dir), *words("train")]],
                [run_dir],
                {"profiles": path["profile"]},
                ("profile",),
                lambda: _train_incomplete(run_dir),
                lambda: (run_dir / "checkpoints" / "last.pt").is_file(),
            )
        )
    upstream_model = ("train",) if request.model is None else ()
    stages.append(
        Stage(
            "embed",
            [
                [
                    *cmd("embed"),
                    str(model),
                    str(path["profile"]),
                    "-o",
                    str(path["embed"]),
                    *words("embed"),
                ]
            ],
            [path["embed"]],
            {"model": model, "profiles": path["profile"]},
            ("profile", *upstream_model),
            lambda: _manifest_incomplete(path["embed"], "embed"),
        )
    )
    for stage, source, reads in (
        ("index", path["embed"], "embeddings"),
        ("knn", path["index"], "store"),
        ("cluster", path["knn"], "graph"),
    ):
        upstream = {"index": "embed", "knn": "index", "cluster": "knn"}[stage]
        stages.append(
            Stage(
                stage,
                [[*cmd(stage), str(source), "-o", str(path[stage]), *words(stage)]],
                [path[stage]],
                {reads: source},
                (upstream,),
                lambda s=stage: _manifest_incomplete(path[s], s),  # type: ignore[misc]
            )
        )
    stages.append(
        Stage(
            "map",
            [
                [
                    *cmd("map"),
                    str(path["embed"]),
                    "-o",
                    str(path["map"]),
                    "--clusters",
                    str(clusters_tsv),
                    *words("map"),
                ]
            ],
            [path["map"]],
            {"embeddings": path["embed"], "clusters": path["cluster"]},
            ("embed", "cluster"),
            lambda: _manifest_incomplete(path["map"], "map"),
        )
    )
    stages.append(_evaluate_stage(request, parsers, where, model, path))
    compare = opts.get("compare", {})
    if any(compare.get(key) is not None for key in ("samples", "a", "b")):
        missing = [f"--{k}" for k in ("samples", "a", "b") if compare.get(k) is None]
        if missing:
            raise KmervaeError(f"compare needs --samples, --a and --b: {' and '.join(missing)}")
        stages.append(
            Stage(
                "compare",
                [
                    [
                        *cmd("compare"),
                        str(path["map"]),
                        "-o",
                        str(path["compare"]),
                        "--clusters",
                        str(clusters_tsv),
                        *words("compare"),
                    ]
                ],
                [path["compare"]],
                {
                    "map": path["map"],
                    "clusters": path["cluster"],
                    "samples": Path(compare["samples"]),
                },
                ("map", "cluster"),
                lambda: _manifest_incomplete(path["compare"], "compare"),
            )
        )
    if "report" in parsers:
        stages.append(_report_stage(stages, parsers, where, opts, path["report"]))
    return stages


def _evaluate_stage(
    request: Request,
    parsers: Mapping[str, argparse.ArgumentParser],
    where: str,
    model: Path,
    path: dict[str, Path],
) -> Stage:
    """Local-distance fidelity (and with labels, taxonomic neighbour agreement) of the model
    beside PCA of the same dimension, on held-out rows: the validation rows of the training
    run, or, for a given model, the rows it was not trained on."""
    from kmervae.evaluate.representations import is_baseline

    parser = parsers["evaluate"]
    options = dict(request.options.get("evaluate", {}))
    chosen = options.pop("baseline", f"pca-{request.latent}")
    baselines = [str(b) for b in (chosen if isinstance(chosen, list) else [chosen])]
    for name in baselines:
        if not is_baseline(name):
            raise KmervaeError(
                f"{where}: [evaluate] baseline {name!r} is not a baseline ({BASELINE_HELP})"
            )
    options.setdefault("fit", str(path["profile"]))
    if request.model is None:
        held_out = ["--run", str(path["train"])]
    else:
        options.setdefault("training-rows", "exclude")
        held_out = []
    base = ["--models", str(model), *baselines, "--datasets", str(path["profile"])]
    outputs = [request.output / QUALITY]
    protocols = ["fidelity"]
    if options.get("labels") is not None:
        protocols.append("taxonomy")
        outputs.append(request.output / TAXONOMY)
    commands = []
    for protocol, output in zip(protocols, outputs, strict=True):
        keep = _protocol_filter(parser, protocol)
        commands.append(
            list(STAGE_COMMANDS["evaluate"])
            + base
            + ["--protocol", protocol, "-o", str(output)]
            + held_out
            + stage_argv(parser, "evaluate", options, where, keep=keep)
        )
    inputs = {"model": model, "profiles": path["profile"]}
    for key in ("labels", "catalog"):
        if options.get(key) is not None:
            inputs[key] = Path(options[key])
    json_files = [o.with_name(o.name + ".json") for o in outputs]
    return Stage(
        "evaluate",
        commands,
        [p for o in outputs for p in (o.with_name(o.name + ".json"), o.with_name(o.name + ".md"))],
        inputs,
        ("profile", "train") if request.model is None else ("profile",),
        lambda: _json_incomplete(json_files),
    )


def _report_stage(
    stages: list[Stage],
    parsers: Mapping[str, argparse.ArgumentParser],
    where: str,
    opts: StageOptions,
    report: Path,
) -> Stage:
    """``kmervae report`` over every output of the stages before it, with the samples of
    the comparison and the labels of the evaluation (the map coloured by their genus, else
    by their first column). Labels joined with a catalogue are a chop table, not a labels
    file: the report does not get them."""
    options = dict(opts.get("report", {}))
    known = long_options(parsers["report"])
    samples = opts.get("compare", {}).get("samples")
    if samples is not None and "samples" in known:
        options.setdefault("samples", samples)
    evaluate = opts.get("evaluate", {})
    labels = evaluate.get("labels")
    wanted = "labels" in known and "labels" not in options
    if labels is not None and evaluate.get("catalog") is None and wanted:
        from kmervae.evaluate.labels import read_labels

        options["labels"] = labels
        if "genus" in read_labels(labels, ids=()).ranks:
            options.setdefault("color", "genus")
    shown = [p for s in stages if s.name not in ("profile", "index", "knn") for p in s.outputs]
    shown = [p for p in shown if p.suffix != ".md"]
    inputs = {p.name: p for p in shown}
    if options.get("labels") is not None:
        inputs["labels"] = Path(options["labels"])
    return Stage(
        "report",
        [
            list(STAGE_COMMANDS["report"])
            + [str(p) for p in shown]
            + ["-o", str(report)]
            + stage_argv(parsers["report"], "report", options, where)
        ],
        [report],
        inputs,
        tuple(s.name for s in stages if s.name not in ("profile", "index", "knn")),
        lambda: _file_incomplete(report),
    )
