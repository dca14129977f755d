"""SIGTERM ends a command with 143 even where Python drops the handler's exception."""

from __future__ import annotations

import gc
import signal
import weakref

import pytest

import kmervae.cli as cli
from kmervae.cli import main


class _Referent:
    pass


def _finish_after_a_lost_sigterm(args):
    """A command whose SIGTERM handler runs inside a weakref callback: Python prints the
    handler's exception as ignored, and the command carries on to its end."""
    referent = _Referent()
    ref = weakref.ref(referent, lambda _: cli._terminate(signal.SIGTERM, None))
    del referent
    gc.collect()
    assert ref() is None
    return 0


@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_sigterm_whose_exception_python_ignored_still_ends_with_143(monkeypatch, capsys):
    original = cli.build_parser

    def patched():
        parser = original()
        for action in parser._actions:
            if getattr(action, "choices", None) and "chop" in action.choices:
                action.choices["chop"].set_defaults(run=_finish_after_a_lost_sigterm)
        return parser

    monkeypatch.setattr(cli, "build_parser", patched)
    code = main(["chop", "missing.fa", "-l", "300-600", "-o", "out.fa"])
    assert code == 143
    assert "kmervae chop: terminated (SIGTERM)" in capsys.readouterr().err


def test_the_flag_does_not_outlive_its_command(monkeypatch, capsys, tmp_path):
    cli._terminated = True  # left over from an earlier command in this process
    code = main(["chop", str(tmp_path / "missing.fa"), "-l", "300-600", "-o", "out.fa"])
    assert code == 1  # the missing file, not a termination
    assert "terminated" not in capsys.readouterr().err
