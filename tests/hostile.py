"""What the bad-input catalogue and the interruption tests share.

A bad input must end a command with exit status 1 (2 for a bad option), one line on stderr
that starts ``kmervae COMMAND: error:`` and names the culprit, no traceback, and nothing left
under a final output name. Tests of the catalogue carry the ``bad_input`` marker and the kill
tests the ``kill_point`` marker, so ``pytest -m bad_input --collect-only -q`` counts them.
"""

from __future__ import annotations

import contextlib
import os
import re
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from kmervae.cli import main

_TEMPORARY = re.compile(r"^\.(.+)\.(tmp|old)-\d+")


def run_cli(argv: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    """Run ``kmervae ARGV`` in this process; returns (exit status, stderr)."""
    capsys.readouterr()
    try:
        code = main([str(a) for a in argv])
    except SystemExit as exc:  # argparse: usage errors
        code = int(exc.code or 0)
    return code, capsys.readouterr().err


def assert_refused(
    argv: list[str],
    capsys: pytest.CaptureFixture[str],
    *needles: str,
    code: int | None = None,
) -> str:
    """Run ``kmervae ARGV`` and check it ends with one error line containing ``needles``."""
    status, err = run_cli(argv, capsys)
    assert status != 0, f"kmervae {' '.join(map(str, argv))} succeeded; stderr:\n{err}"
    if code is not None:
        assert status == code, err
    assert "Traceback" not in err, err
    errors = [line for line in err.splitlines() if ": error:" in line]
    assert len(errors) == 1, err
    line = errors[0]
    assert line.startswith(f"kmervae {argv[0]}"), err
    for needle in needles:
        assert needle.lower() in line.lower(), f"{needle!r} not in {line!r}"
    return line


def leftovers(folder: Path) -> list[Path]:
    """Temporary entries (``.NAME.tmp-PID``, ``.NAME.old-PID``) anywhere under ``folder``."""
    return [p for p in Path(folder).rglob(".*") if _TEMPORARY.match(p.name)]


def assert_clean(folder: Path, *absent: Path) -> None:
    """No temporaries under ``folder`` and none of ``absent`` exists."""
    assert not leftovers(folder), leftovers(folder)
    for path in absent:
        assert not Path(path).exists(), f"{path} was left behind"


@contextlib.contextmanager
def small_disk(parent: Path, size: str = "256k") -> Iterator[Path]:
    """A small tmpfs mounted under ``parent`` (skips the test where mounting is not allowed)."""
    folder = parent / f"disk-{uuid.uuid4().hex[:8]}"
    folder.mkdir()
    if os.geteuid() != 0:
        pytest.skip("a small tmpfs needs root")
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
        capture_output=True,
        text=True,
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], capture_output=True)


@contextlib.contextmanager
def read_only_folder(parent: Path) -> Iterator[Path]:
    """A read-only file system (a tmpfs mounted ro) under ``parent``: unwritable even for root,
    where a chmod would not be (skips the test where mounting is not allowed)."""
    with small_disk(parent, "64k") as folder:
        done = subprocess.run(
            ["mount", "-o", "remount,ro", str(folder)], capture_output=True, text=True
        )
        if done.returncode != 0:
            pytest.skip(f"cannot remount read-only: {done.stderr.strip()}")
        yield folder


def kmervae_process(argv: list[str], **kwargs: object) -> subprocess.Popen[str]:
    """Start ``kmervae ARGV`` as its own process (stdout and stderr piped, text)."""
    return subprocess.Popen(
        [sys.executable, "-m", "kmervae", *map(str, argv)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        **kwargs,  # type: ignore[arg-type]
    )


def interrupt(
    argv: list[str], sig: int, after: float, *, started: Path | None = None, timeout: float = 120
) -> tuple[int, str]:
    """Run ``kmervae ARGV`` as a process and send it ``sig`` ``after`` seconds after it has
    started working: once a path named ``.{started.name}.tmp-*`` exists beside ``started``
    (the output under construction), or from the start if ``started`` is None. Returns the
    exit status (negative: killed by the signal, as subprocess reports it) and stderr; a
    command that finished first is left alone."""
    proc = kmervae_process(argv)
    deadline = time.monotonic() + timeout
    if started is not None:
        pattern = f".{started.name}.tmp-{proc.pid}*"
        while proc.poll() is None and not list(started.parent.glob(pattern)):
            if time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"kmervae {argv[0]} never started {started}")
            time.sleep(0.02)
    time.sleep(after)
    if proc.poll() is None:
        proc.send_signal(sig)
    _, err = proc.communicate(timeout=max(1.0, deadline - time.monotonic()))
    return proc.returncode, err


def check_interrupted(code: int, err: str, sig: int, command: str) -> bool:
    """Check how a command sent ``sig`` ended; True if it was stopped (not finished first).
    SIGINT and SIGTERM end with exit 130/143 and one line; SIGKILL ends it without a word."""
    if code == 0:
        return False
    assert "Traceback" not in err, err
    if sig == signal.SIGKILL:
        assert code == -signal.SIGKILL, err
        return True
    expected = {signal.SIGINT: (130, "interrupted"), signal.SIGTERM: (143, "terminated")}[sig]
    assert code == expected[0], err
    last = err.strip().splitlines()[-1]
    assert last.startswith(f"kmervae {command}: {expected[1]}"), err
    return True


def stopped_then_rerun(
    argv: list[str],
    output: Path,
    sig: int,
    after: float,
    same: Callable[[Path], None] | None = None,
) -> bool:
    """Stop ``kmervae ARGV`` (writing ``output``) with ``sig`` ``after`` seconds into its
    work, check what it left, rerun it in this process with ``--force`` and check that the
    rerun leaves no temporaries. ``same(output)`` compares an output with an uninterrupted
    run's: it is applied to any output the stopped command left under its final name (which
    must then be whole), and to the rerun's.
    Returns whether the command was stopped before it finished."""
    command = str(argv[0])
    code, err = interrupt(argv, sig, after, started=output)
    where = f"signal {sig} {after:.3f} s into the work, exit {code}: {err}"
    stopped = check_interrupted(code, err, sig, command)
    if output.exists():  # finished, or stopped after its last rename: it must be whole
        if same is not None:
            same(output)
    else:
        assert stopped, f"{output} is missing; {where}"
    if stopped and sig != signal.SIGKILL:
        assert not leftovers(output.parent), f"{leftovers(output.parent)}; {where}"
    status = main([*map(str, argv), "-q", "--force"])  # the rerun removes what a kill left
    assert status == 0, f"the rerun failed; {where}"
    assert_clean(output.parent)
    if same is not None:
        same(output)
    return stopped
