"""One command-line vocabulary: every (sub)command spells the same things the same way."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest

from kmervae import __version__
from kmervae.cli import build_parser, main
from kmervae.cli._common import threads_type

#: commands that write no file of their own (they change a store in place, or print)
NO_OUTPUT = {"index add", "index info"}
#: spellings replaced by the vocabulary's
OLD_SPELLINGS = {
    "--k",
    "--graph-k",
    "--n-neighbors",
    "--neighbors",
    "--partitions",
    "--nprobes",
    "--prefix-file",
    "--onnx",
}


def _commands(
    parser: argparse.ArgumentParser, path: tuple[str, ...] = ()
) -> list[tuple[tuple[str, ...], argparse.ArgumentParser]]:
    """Every parser under ``parser`` (itself included), with its command words."""
    found = [(path, parser)]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found += _commands(child, (*path, name))
    return found


def _is_leaf(parser: argparse.ArgumentParser) -> bool:
    return not any(isinstance(a, argparse._SubParsersAction) for a in parser._actions)


def _options(parser: argparse.ArgumentParser) -> dict[str, argparse.Action]:
    return {s: a for a in parser._actions for s in a.option_strings}


def _minimal_argv(parser: argparse.ArgumentParser) -> list[str]:
    """Values for the required arguments of a leaf command (enough to get past them)."""
    argv: list[str] = []
    chosen = [g._group_actions[0] for g in parser._mutually_exclusive_groups if g.required]
    for action in parser._actions:
        if isinstance(action, argparse._HelpAction):
            continue
        value = str(action.choices[0]) if action.choices else "1"
        if not action.option_strings:
            if action.nargs not in ("*", "?"):
                argv.append(value)
        elif action.required or action in chosen:
            argv += [action.option_strings[0], value]
    return argv


def test_every_command_speaks_one_vocabulary(capsys):
    top = build_parser()
    commands = _commands(top)
    assert len(commands) > 20
    for words, parser in commands:
        name = " ".join(words) or "kmervae"
        options = _options(parser)
        # no abbreviated long options, at any level
        assert parser.allow_abbrev is False, name
        # help texts show no formatting artefact and name no file users do not have
        text = parser.format_help()
        assert "%%" not in text and "DESIGN.md" not in text, name
        assert not OLD_SPELLINGS & set(options), (name, OLD_SPELLINGS & set(options))
        # -k is the neighbour count, spelt -k/--neighbours
        for flag in ("-k", "--neighbours"):
            if flag in options:
                assert options[flag].option_strings == ["-k", "--neighbours"], name
        # -t/--threads: one spelling, one type, one default
        if "--threads" in options or "-t" in options:
            threads = options["--threads"]
            assert threads.option_strings == ["-t", "--threads"], name
            assert threads.type is threads_type and threads.default == 0, name
        # IVF lists: FAISS's names
        for flag in ("--nlist", "--nprobe"):
            if flag in options:
                assert options[flag].option_strings == [flag], name
        if not _is_leaf(parser):
            continue
        # the main output is -o/--output
        if name not in NO_OUTPUT:
            assert "-o" in options and options["-o"].option_strings[:2] == ["-o", "--output"], name
        # an unknown option is reported with the usage of the command it was given to
        argv = [*words, *_minimal_argv(parser), "--no-such-option"]
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2, (name, err)
        assert err.startswith(f"usage: kmervae {name} "), (name, err)
        assert f"kmervae {name}: error: unrecognized arguments: --no-such-option" in err, err

    # -V and --version
    for flag in ("-V", "--version"):
        with pytest.raises(SystemExit) as exit_info:
            main([flag])
        assert exit_info.value.code == 0
        assert capsys.readouterr().out.strip() == f"kmervae {__version__}"

    # abbreviations are refused, not expanded, in nested commands too
    for argv, wrong in (
        (["index", "build", "-o", "s", "--nprob", "8"], "--nprob"),
        (["knn", "s", "-o", "g", "--nl", "8"], "--nl"),
        (["evaluate", "fidelity", "clr", "d", "--pool", "40"], "--pool"),
        (["profile", "x.fa", "-o", "p", "--prefix"], "--prefix"),
    ):
        with pytest.raises(SystemExit) as exit_info:
            main(argv)
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and f"unrecognized arguments: {wrong}" in err, err
        assert err.startswith(f"usage: kmervae {argv[0]}")


def test_help_and_version_into_a_closed_pipe_end_quietly():
    # `kmervae --help | head -0`: the reader has gone before anything is written
    for flag in ("--help", "-V"):
        read_end, write_end = os.pipe()
        os.close(read_end)
        proc = subprocess.Popen(
            [sys.executable, "-m", "kmervae", flag], stdout=write_end, stderr=subprocess.PIPE
        )
        os.close(write_end)
        _, err = proc.communicate(timeout=120)
        assert err == b"" and proc.returncode in (0, 141)
