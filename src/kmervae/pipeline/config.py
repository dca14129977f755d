"""The options of a pipeline: per stage, keyed by the stage command's long option names.

Options come from three places, later ones winning: the pipeline's defaults, a TOML file
(one section per stage, ``[train] epochs = 40``) and the caller (the command line's flags or
the ``options`` mapping of :func:`kmervae.pipeline.run_pipeline`). Every key is checked
against the parser of the command that runs the stage before anything runs, so a misspelt
option ends the pipeline before its first stage.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from kmervae.errors import InputError, KmervaeError

#: every stage, in the order they run
STAGE_NAMES = (
    "profile",
    "train",
    "embed",
    "index",
    "knn",
    "cluster",
    "map",
    "evaluate",
    "compare",
    "report",
)

#: the command (words after ``kmervae``) that runs each stage
STAGE_COMMANDS: dict[str, tuple[str, ...]] = {
    "profile": ("profile",),
    "train": ("train",),
    "embed": ("embed",),
    "index": ("index", "build"),
    "knn": ("knn",),
    "cluster": ("cluster",),
    "map": ("map",),
    "evaluate": ("evaluate", "matrix"),
    "compare": ("compare",),
    "report": ("report",),
}

#: options the pipeline sets itself: inputs and outputs, replacing, resuming and logging
MANAGED = frozenset(
    {
        "output",
        "json",
        "force",
        "resume",
        "verbose",
        "quiet",
        "help",
        "models",
        "datasets",
        "protocol",
        "run",
    }
)

#: keys of the pipeline's own, beside the options of a stage's command
PIPELINE_KEYS: dict[str, frozenset[str]] = {"evaluate": frozenset({"baseline"})}

#: values of one option: what TOML gives (lists become comma-separated or repeated values)
OptionValue = str | int | float | bool | list[Any] | Path
StageOptions = dict[str, dict[str, Any]]


def option_key(name: str) -> str:
    """The key of an option as stored: ``min_length`` and ``min-length`` are one key."""
    return name.strip().lstrip("-").replace("_", "-")


def stage_parsers(stages: tuple[str, ...] = STAGE_NAMES) -> dict[str, argparse.ArgumentParser]:
    """The parser of the command behind each stage that this kmervae has (``report`` may be
    missing from it)."""
    from kmervae.cli import build_parser  # the stages are the commands themselves

    root = build_parser()
    parsers = {}
    for stage in stages:
        parser: argparse.ArgumentParser | None = root
        for word in STAGE_COMMANDS[stage]:
            parser = _subcommand(parser, word) if parser is not None else None
        if parser is not None:
            parsers[stage] = parser
    return parsers


def _subcommand(parser: argparse.ArgumentParser, word: str) -> argparse.ArgumentParser | None:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            found = action.choices.get(word)
            return found if isinstance(found, argparse.ArgumentParser) else None
    return None


def long_options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    """The options of ``parser`` by key (``min-length``), the pipeline's own excluded."""
    options = {}
    for action in parser._actions:
        longs = [s for s in action.option_strings if s.startswith("--")]
        if longs and action.dest not in MANAGED:
            for spelling in longs:
                if option_key(spelling) not in MANAGED:
                    options[option_key(spelling)] = action
    return options


def read_config(path: str | Path) -> StageOptions:
    """The sections of a pipeline TOML file, keys normalised (:func:`option_key`); the
    keys are checked later, against the stages' parsers (:func:`check_options`)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such config file")
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: not valid TOML ({exc})") from None
    sections: StageOptions = {}
    for name, section in data.items():
        if name not in STAGE_NAMES:
            raise InputError(
                f"{path}: no stage [{name}] (stages: {', '.join(STAGE_NAMES)})"
                if isinstance(section, dict)
                else f"{path}: '{name}' outside a section; put it under its stage, e.g. "
                f"[train] {name} = ..."
            )
        if not isinstance(section, dict):
            raise InputError(f"{path}: [{name}] must be a section")
        sections[name] = {option_key(key): value for key, value in section.items()}
    return sections


def merge_options(*layers: Mapping[str, Mapping[str, Any]] | None) -> StageOptions:
    """Stage options of several layers, later layers winning key by key; a value of None
    leaves the earlier one in place."""
    merged: StageOptions = {}
    for layer in layers:
        for stage, options in (layer or {}).items():
            target = merged.setdefault(stage, {})
            for key, value in options.items():
                if value is not None:
                    target[option_key(key)] = value
    return merged


def check_options(
    options: Mapping[str, Mapping[str, Any]],
    parsers: Mapping[str, argparse.ArgumentParser],
    where: str,
) -> None:
    """Refuse a stage or a key that no stage knows, in one line naming ``where`` (the config
    file, or ``options``)."""
    for stage, keys in options.items():
        if stage not in STAGE_NAMES:
            raise KmervaeError(f"{where}: no stage [{stage}] (stages: {', '.join(STAGE_NAMES)})")
        parser = parsers.get(stage)
        if parser is None:
            continue  # a stage this kmervae cannot run (report) is skipped, options and all
        known = set(long_options(parser)) | PIPELINE_KEYS.get(stage, frozenset())
        for key in keys:
            if option_key(key) in known:
                continue
            if option_key(key).replace("-", "_") in MANAGED:
                raise KmervaeError(f"{where}: [{stage}] '{key}' is set by the pipeline itself")
            names = sorted({k.replace("-", "_") for k in known})
            raise KmervaeError(f"{where}: [{stage}] no option '{key}' (known: {', '.join(names)})")


def option_argv(parser: argparse.ArgumentParser, key: str, value: Any, where: str) -> list[str]:
    """The command-line words of one option: ``--epochs 40``; ``true`` for a flag gives the
    flag alone and ``false`` nothing; a list gives its items comma-separated (``-r 0.5,1``),
    or one word each for options that take several (``--fasta A.fa B.fa``)."""
    action = long_options(parser)[option_key(key)]
    spelling = next(s for s in action.option_strings if s.startswith("--"))
    takes = action.nargs
    if takes == 0:  # store_true, store_const, count
        if not isinstance(value, bool):
            raise KmervaeError(f"{where}: '{key}' is a switch: give true or false, not {value!r}")
        return [spelling] if value else []
    if isinstance(value, bool):
        raise KmervaeError(f"{where}: '{key}' takes a value, not {str(value).lower()}")
    if isinstance(value, list | tuple):
        items = [_word(v) for v in value]
        if not items:
            raise KmervaeError(f"{where}: '{key}' is an empty list")
        if takes in ("+", "*") or (isinstance(takes, int) and takes > 1):
            return [spelling, *items]
        return [spelling, ",".join(items)]
    if isinstance(value, dict):
        raise KmervaeError(f"{where}: '{key}' must be a value or a list, not a table")
    return [spelling, _word(value)]


def _word(value: Any) -> str:
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, float) and value.is_integer():
        return repr(value)
    return str(value)


def check_argv(parser: argparse.ArgumentParser, argv: list[str], where: str) -> None:
    """Parse ``argv`` with a stage's parser, turning a usage error into one line naming
    ``where`` and the parser's own complaint."""
    stderr = io.StringIO()
    try:
        with contextlib.redirect_stderr(stderr):
            parser.parse_args(argv)
    except SystemExit:
        lines = [line for line in stderr.getvalue().splitlines() if ": error: " in line]
        why = lines[-1].split(": error: ", 1)[1] if lines else "not accepted"
        raise KmervaeError(f"{where}: {why}") from None
