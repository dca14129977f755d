"""Run the stages of a pipeline in order, skipping those whose outputs are up to date.

The state file ``OUT/pipeline.json`` records, per stage, its command line, its outputs, the
checksums of its inputs and whether it finished; it is written (atomically) when a stage
starts and when it ends. A rerun skips a stage whose outputs are complete and whose command
line and input checksums are the recorded ones, and redoes every other stage, and every stage
that reads the output of a redone one.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kmervae.errors import InputError, KmervaeError, OutputExistsError
from kmervae.io.atomic import remove_own_temporaries
from kmervae.io.manifest import write_json
from kmervae.pipeline.config import (
    STAGE_COMMANDS,
    check_argv,
    check_options,
    long_options,
    merge_options,
    read_config,
    stage_parsers,
)
from kmervae.pipeline.stages import Request, Stage, check_model, input_checksum, plan_stages
from kmervae.provenance import run_provenance

log = logging.getLogger(__name__)

#: ``format`` and ``schema_version`` of ``pipeline.json``
FORMAT_NAME = "kmervae-pipeline"
SCHEMA_VERSION = 1
STATE_FILE = "pipeline.json"
#: why a stage recorded as started, and not done, runs again
INTERRUPTED = "output incomplete (interrupted)"


@dataclass
class StageOutcome:
    """What became of one stage: ``status`` is ``run`` or ``skipped`` (up to date);
    ``reason`` says why a stage that had run before was redone."""

    name: str
    status: str
    seconds: float
    outputs: list[Path]
    reason: str | None = None


@dataclass
class PipelineResult:
    """The stages of a finished pipeline, in order, and its folder and state file."""

    output: Path
    stages: list[StageOutcome] = field(default_factory=list)
    not_run: dict[str, str] = field(default_factory=dict)

    @property
    def state_file(self) -> Path:
        return self.output / STATE_FILE


def run_pipeline(
    fastas: Sequence[str | Path],
    output: str | Path,
    *,
    model: str | Path | None = None,
    config: str | Path | None = None,
    options: Mapping[str, Mapping[str, Any]] | None = None,
    labels: str | Path | None = None,
    catalog: str | Path | None = None,
    samples: str | Path | None = None,
    groups: tuple[str, str] | None = None,
    seed: int = 1,
    threads: int = 0,
    force: bool = False,
    verbosity: int = 0,
    echo: Callable[[str], None] | None = None,
    argv: list[str] | None = None,
) -> PipelineResult:
    """From FASTA files to profiles, a model, embeddings, an index store, a k-NN graph,
    clusters, a map, quality figures, and with samples a comparison and a report.

    Parameters
    ----------
    fastas : FASTA files (plain or compressed), one sample each; contig ids become
        ``STEM_ID`` (``kmervae profile --prefix-ids``).
    output : the pipeline's folder; made if missing. A folder that holds other things and no
        ``pipeline.json`` is refused unless ``force``.
    model : a model to embed with instead of training one: a VAE or PCA model folder, a
        checkpoint ``.pt`` or an ``.onnx``; it must read the profiles' k-groups.
    config : a TOML file with a section per stage (``[train] epochs = 40``), keys the long
        option names of the stage's command.
    options : the same as ``config``, as a mapping; wins over it key by key.
    labels, catalog : labels of the contigs (and a genome catalogue) for the taxonomy
        evaluation (``[evaluate] labels``, ``catalog``).
    samples, groups : a samples table and two of its groups, for the comparison stage
        (``[compare] samples``, ``a``, ``b``).
    seed, threads : ``--seed`` and ``-t`` of every stage that has them, unless its section
        sets its own (0 threads: all cores).
    force : redo every stage.
    verbosity : 0 keeps the stages quiet but for warnings; 1 shows their messages, 2 debug.
    echo : receives the progress lines (``pipeline: [3/9] embed ... 12.3 s``); None: logged.
    argv : the command line, for the provenance records (default ``sys.argv``).

    Returns
    -------
    PipelineResult
        every stage's outcome and time.

    Raises
    ------
    KmervaeError
        bad input, found before any stage runs; or a stage's own error, prefixed by its name.
    """
    say = echo or log.info
    request, parsers, stages, where = _prepare(
        fastas, output, model, config, options, labels, catalog, samples, groups, seed, threads
    )
    out = request.output
    state_path = out / STATE_FILE
    if out.exists() and not state_path.exists() and any(out.iterdir()) and not force:
        raise OutputExistsError(out)
    for stage in stages:
        for command in stage.commands:
            check_argv(parsers[stage.name], command[len(STAGE_COMMANDS[stage.name]) :], where)
    old = _read_state(state_path)
    out.mkdir(exist_ok=True)
    from kmervae.cli._common import LogFile  # the pipeline's own log, beside its outputs

    logfile = LogFile(out / "kmervae.log", argparse.Namespace(argv=argv), seed)
    try:
        records: dict[str, Any] = dict(old["stages"]) if isinstance(old.get("stages"), dict) else {}
        state = {
            "format": FORMAT_NAME,
            "schema_version": SCHEMA_VERSION,
            "output": str(out),
            "stages": records,
            "provenance": run_provenance(argv, seed),
        }
        result = PipelineResult(out)
        if "report" not in parsers:
            result.not_run["report"] = "this kmervae has no report command"
            say("pipeline: report: not run (this kmervae has no report command)")
        redone: set[str] = set()
        for number, stage in enumerate(stages, 1):
            head = f"pipeline: [{number}/{len(stages)}] {stage.name}"
            recorded = records.get(stage.name)
            inputs = {role: input_checksum(p) for role, p in stage.inputs.items()}
            why = (
                "forced"
                if force
                else _why_redo(stage, recorded if isinstance(recorded, dict) else None, inputs, out)
            )
            if why is None and redone & set(stage.depends):
                why = f"its {sorted(redone & set(stage.depends))[0]} stage was redone"
            if why is None:
                say(f"{head}: done, skipped")
                result.stages.append(StageOutcome(stage.name, "skipped", 0.0, stage.outputs))
                continue
            flags = ["--force"]
            if why == INTERRUPTED and stage.resumable():
                why, flags = "resuming the interrupted run", ["--resume"]
            if recorded is not None:
                say(f"{head}: redoing: {why}")
            records[stage.name] = {
                "status": "started",
                "commands": portable(stage.commands, out),
                "outputs": [str(p) for p in stage.outputs],
                "inputs": {
                    role: {"path": str(stage.inputs[role]), "sha256": checksum}
                    for role, checksum in inputs.items()
                },
            }
            write_json(state_path, state, overwrite=True)
            started = time.perf_counter()
            for command in stage.commands:
                _run_command(stage.name, [*command, *flags, *_verbosity(verbosity)], out)
            seconds = time.perf_counter() - started
            records[stage.name].update(status="done", seconds=round(seconds, 3))
            write_json(state_path, state, overwrite=True)
            redone.add(stage.name)
            say(f"{head} ... {seconds:.1f} s")
            result.stages.append(
                StageOutcome(stage.name, "run", seconds, stage.outputs, why if recorded else None)
            )
        return result
    finally:
        logfile.close()
        from kmervae.cli._common import setup_console_logging

        setup_console_logging(verbosity)


def _prepare(
    fastas: Sequence[str | Path],
    output: str | Path,
    model: str | Path | None,
    config: str | Path | None,
    options: Mapping[str, Mapping[str, Any]] | None,
    labels: str | Path | None,
    catalog: str | Path | None,
    samples: str | Path | None,
    groups: tuple[str, str] | None,
    seed: int,
    threads: int,
) -> tuple[Request, dict[str, argparse.ArgumentParser], list[Stage], str]:
    """Every check that can be made before a stage runs; nothing is written."""
    if not fastas:
        raise KmervaeError("fastas: give at least one FASTA file")
    paths = []
    for fasta in fastas:
        path = Path(fasta)
        if str(fasta) == "-":
            raise KmervaeError("fastas: '-' (stdin) cannot be read twice; give a file")
        if not path.is_file():
            raise InputError(f"{path}: no such FASTA file")
        if not os.access(path, os.R_OK):
            raise InputError(f"{path}: not readable")
        paths.append(path.resolve())
    if len(set(paths)) != len(paths):
        raise KmervaeError("fastas: a FASTA file is given twice")
    out = Path(output)
    if out.exists() and not out.is_dir():
        raise KmervaeError(f"{out}: exists and is not a folder")
    if not out.resolve().parent.is_dir():
        raise KmervaeError(f"output folder {out.parent} does not exist")
    parsers = stage_parsers()
    where = str(config) if config is not None else "options"
    from_file = read_config(config) if config is not None else {}
    check_options(from_file, parsers, where)
    given: dict[str, dict[str, Any]] = {k: dict(v) for k, v in (options or {}).items()}
    check_options(given, parsers, "options")
    if labels is not None:
        given.setdefault("evaluate", {})["labels"] = labels
    if catalog is not None:
        given.setdefault("evaluate", {})["catalog"] = catalog
    if samples is not None or groups is not None:
        if samples is None or groups is None or len(groups) != 2:
            raise KmervaeError("a comparison needs samples and two groups")
        given.setdefault("compare", {}).update(samples=samples, a=groups[0], b=groups[1])
    defaults: dict[str, dict[str, Any]] = {"cluster": {"method": "leiden"}}
    for stage, parser in parsers.items():
        known = long_options(parser)
        if "seed" in known:
            defaults.setdefault(stage, {})["seed"] = seed
        if "threads" in known:
            defaults.setdefault(stage, {})["threads"] = threads
    merged = merge_options(defaults, from_file, given)
    for stage, key in (("evaluate", "labels"), ("evaluate", "catalog"), ("compare", "samples")):
        value = merged.get(stage, {}).get(key)
        if value is not None:
            file = Path(value)
            if not file.is_file():
                raise InputError(f"{file}: no such file ({key})")
            merged[stage][key] = str(file.resolve())
    model_path = None
    if model is not None:
        model_path = Path(model)
        if not model_path.exists():
            raise InputError(f"{model_path}: no such model")
        model_path = model_path.resolve()
        latent = check_model(model_path)
    else:
        from kmervae._extras import require
        from kmervae.model.config import VAEConfig

        require("torch", extra="train", purpose="training (the pipeline without --model)")
        latent = int(merged.get("train", {}).get("latent", VAEConfig().latent))
    request = Request(tuple(paths), out.resolve(), model_path, merged, latent)
    return request, parsers, plan_stages(request, parsers, where), where


def _read_state(path: Path) -> dict[str, Any]:
    """The recorded state, or an empty one (with a warning) when it cannot be read."""
    if not path.exists():
        return {}
    try:
        state = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        log.warning("%s: unreadable (%s): every stage is redone", path, exc)
        return {}
    if not isinstance(state, dict) or state.get("format") != FORMAT_NAME:
        log.warning("%s: not a kmervae pipeline state: every stage is redone", path)
        return {}
    return state


def _why_redo(
    stage: Stage, recorded: dict[str, Any] | None, inputs: dict[str, str | None], output: Path
) -> str | None:
    """Why ``stage`` must run again, or None when its outputs are up to date."""
    commands = portable(stage.commands, output)
    if recorded is None:
        return "not run before"
    if recorded.get("status") != "done":
        if recorded.get("commands") == commands and _same_inputs(recorded, inputs):
            return INTERRUPTED
        return f"{INTERRUPTED}, and its options or inputs changed"
    missing = stage.incomplete()
    if missing is not None:
        return missing
    if recorded.get("commands") != commands:
        return "options changed"
    for role, checksum in inputs.items():
        before = recorded.get("inputs", {}).get(role)
        if not isinstance(before, dict) or before.get("sha256") != checksum:
            return f"its {role} changed"
    return None


def portable(commands: list[list[str]], output: Path) -> list[list[str]]:
    """Command lines as recorded: paths inside the pipeline's folder start with ``OUT/``, so
    that a folder moved or copied elsewhere is still up to date."""
    inside = str(output) + os.sep
    return [
        [
            "OUT"
            if word == str(output)
            else "OUT/" + word[len(inside) :]
            if word.startswith(inside)
            else word
            for word in command
        ]
        for command in commands
    ]


def _same_inputs(recorded: dict[str, Any], inputs: dict[str, str | None]) -> bool:
    before = recorded.get("inputs", {})
    return all(
        isinstance(before.get(role), dict) and before[role].get("sha256") == checksum
        for role, checksum in inputs.items()
    )


def _verbosity(verbosity: int) -> list[str]:
    """The stages' own -v/-q: quiet but for warnings by default."""
    if verbosity >= 2:
        return ["-v"]
    if verbosity == 1:
        return []
    return ["-q"] * (1 - verbosity)


def _run_command(stage: str, argv: list[str], folder: Path) -> None:
    """Run one command in this process, as ``kmervae ARGV`` would; its error becomes one
    line prefixed by the stage's name."""
    from kmervae.cli import build_parser, describe_os_error, stop_if_terminated
    from kmervae.cli._common import setup_console_logging

    args = build_parser().parse_args(argv)  # checked by check_argv before any stage ran
    setup_console_logging(args.verbose - args.quiet)
    args.argv = list(argv)
    try:
        # what a command prints as its result goes with the progress lines, so that the
        # pipeline's own output is its summary
        with contextlib.redirect_stdout(sys.stderr):
            code = int(args.run(args))
        stop_if_terminated()
    except OutputExistsError as exc:
        remove_own_temporaries(folder)
        raise KmervaeError(f"{stage}: {exc.path} already exists") from None
    except KmervaeError as exc:
        remove_own_temporaries(folder)
        raise KmervaeError(f"{stage}: {exc}") from None
    except OSError as exc:
        remove_own_temporaries(folder)
        raise KmervaeError(f"{stage}: {describe_os_error(exc, args)}") from None
    except BaseException:
        remove_own_temporaries(folder)
        raise
    if code != 0:
        raise KmervaeError(
            f"{stage}: kmervae {' '.join(STAGE_COMMANDS[stage])} ended with exit status {code}"
            " (see its messages above)"
        )


def human_size(n: int) -> str:
    """``du -h``-like: 512 B, 1.2 KiB, 3.4 MiB …"""
    size = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if size < 1024 or unit == "TiB":
            return f"{size:.0f} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def disk_usage(path: Path) -> int:
    """Bytes of a file, or of every file under a folder (links not followed)."""
    if not path.is_dir():
        return path.stat().st_size if path.exists() else 0
    total = 0
    for root, _dirs, files in os.walk(path):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(root, name)).st_size
    return total


def summary_lines(result: PipelineResult) -> list[str]:
    """Every output of a finished pipeline and its size, one per line."""
    lines = [f"pipeline: outputs in {result.output}"]
    rows = [(p, disk_usage(p)) for s in result.stages for p in s.outputs]
    rows.append((result.state_file, disk_usage(result.state_file)))
    width = max(len(_shown(p, result.output)) for p, _ in rows)
    for path, size in rows:
        lines.append(f"  {_shown(path, result.output):<{width}}  {human_size(size):>10}")
    lines.append(f"  {'total':<{width}}  {human_size(disk_usage(result.output)):>10}")
    return lines


def _shown(path: Path, output: Path) -> str:
    try:
        name = str(path.relative_to(output))
    except ValueError:
        name = str(path)
    return name + "/" if path.is_dir() else name
