"""Outputs appear whole or not at all: temporaries of killed runs, range-checked options."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys

import pytest
from hostile import read_only_folder

from kmervae.cli._common import Bounded, BoundedList, fraction, positive_int, seed_type
from kmervae.errors import KmervaeError
from kmervae.io.atomic import (
    atomic_file,
    check_writable,
    remove_stale_temporaries,
    scratch_dir,
    temporary_name,
)


def _dead_pid() -> int:
    """The id of a process that has ended (and was reaped)."""
    done = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)  # fmt: skip
    return int(done.stdout)


def test_temporary_names_carry_the_process_id(tmp_path):
    final = tmp_path / "out.kmv"
    assert temporary_name(final).name == f".out.kmv.tmp-{os.getpid()}"
    assert temporary_name(final, "ids").name == f".out.kmv.tmp-{os.getpid()}.ids"
    folder = scratch_dir(final, "work")
    assert folder.is_dir() and folder.parent == tmp_path


def test_stale_temporaries_of_dead_writers_go_and_live_ones_stay(tmp_path):
    final = tmp_path / "out.kmv"
    dead = _dead_pid()
    stale = [tmp_path / f".out.kmv.tmp-{dead}", tmp_path / f".out.kmv.tmp-{dead}.ids"]
    stale[0].mkdir()
    (stale[0] / "features.npy").write_bytes(b"x" * 100)
    stale[1].write_bytes(b"y")
    live = [tmp_path / f".out.kmv.tmp-{os.getpid()}", tmp_path / ".out.kmv.tmp-1"]
    other = [tmp_path / f".other.kmv.tmp-{dead}", tmp_path / f".out.kmv2.tmp-{dead}"]
    for path in [*live, *other]:
        path.write_bytes(b"z")
    check_writable(final, overwrite=False)
    assert not any(p.exists() for p in stale)
    assert all(p.exists() for p in [*live, *other])


def test_an_output_moved_aside_by_a_killed_run_is_put_back(tmp_path):
    final = tmp_path / "run"
    dead = _dead_pid()
    aside = tmp_path / f".run.old-{dead}"
    aside.mkdir()
    (aside / "model.safetensors").write_bytes(b"good")
    assert remove_stale_temporaries(final) == []
    assert (final / "model.safetensors").read_bytes() == b"good"
    # with the output in place, a leftover copy is only garbage
    aside.mkdir()
    assert remove_stale_temporaries(final) == [aside]
    assert not aside.exists()


def test_atomic_file_leaves_nothing_on_error_and_keeps_the_old_output(tmp_path):
    final = tmp_path / "table.tsv"
    final.write_text("old")
    with pytest.raises(RuntimeError), atomic_file(final, overwrite=True) as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert final.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["table.tsv"]


@pytest.mark.bad_input
def test_an_existing_or_unplaceable_output_is_refused(tmp_path):
    (tmp_path / "x").write_text("keep")
    with pytest.raises(KmervaeError, match="already exists"):
        check_writable(tmp_path / "x", overwrite=False)
    with pytest.raises(KmervaeError, match="does not exist"):
        check_writable(tmp_path / "absent" / "x", overwrite=False)
    os.symlink(tmp_path / "nowhere", tmp_path / "dangling")
    with pytest.raises(KmervaeError, match="already exists"):
        check_writable(tmp_path / "dangling", overwrite=False)


@pytest.mark.bad_input
def test_a_read_only_folder_is_refused_before_any_work(tmp_path):
    with read_only_folder(tmp_path) as folder, pytest.raises(KmervaeError, match="not writable"):
        check_writable(folder / "out", overwrite=False)


@pytest.mark.parametrize(
    ("kind", "good", "bad", "message"),
    [
        (positive_int, "3", "0", "must be >= 1, got '0'"),
        (positive_int, "3", "2.5", "expected an integer"),
        (fraction, "0.5", "1", "must be in (0, 1), got '1'"),
        (fraction, "0.5", "nan", "must be a finite number"),
        (seed_type, "0", "-1", "must be in [0, 4294967295]"),
        (Bounded(float, high=2), "-3", "2.5", "must be <= 2"),
        (Bounded(float, 1, 100, low_open=True), "1.4", "1", "must be in (1, 100]"),
        (BoundedList(int, 1), "5,4", "5,0", "must be >= 1, got '5,0'"),
        (BoundedList(float), "1.4,2", "1.4,", "expected comma-separated numbers"),
    ],
)
def test_range_checked_option_types(kind, good, bad, message):
    kind(good)
    with pytest.raises(argparse.ArgumentTypeError) as info:
        kind(bad)
    assert message in str(info.value)


def test_a_failed_command_takes_its_own_temporaries_with_it(tmp_path):
    from kmervae.io.atomic import remove_own_temporaries

    pid, dead = os.getpid(), _dead_pid()
    mine = [tmp_path / f".x.tmp-{pid}", tmp_path / f".x.tmp-{pid}.work"]
    for path in mine:
        path.mkdir()
    (tmp_path / f".y.old-{pid}").write_text("earlier output")  # moved aside, never replaced
    others = [tmp_path / f".z.tmp-{dead}", tmp_path / f".x.tmp-{pid}.commit", tmp_path / "x"]
    for path in others:
        path.write_text("not mine to remove")
    assert sorted(remove_own_temporaries(tmp_path)) == sorted(mine)
    assert (tmp_path / "y").read_text() == "earlier output"
    assert all(p.exists() for p in others)
