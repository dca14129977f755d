"""``kmervae concat`` against hostile options, inputs, outputs, full disks and kills.

Every refusal is one line naming the culprit, with nothing left behind; a run killed at any
point (SIGKILL included, at each rename of the final commit) never leaves a train side
without its validation side or a legacy ``.npy`` beside the ids of another run, and a rerun
gives the same bytes as an uninterrupted run.
"""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path

import numpy as np
import pytest
from hostile import (
    assert_clean,
    assert_refused,
    check_interrupted,
    kmervae_process,
    leftovers,
    run_cli,
    small_disk,
)
from profile_factory import write_dataset

from kmervae.cli import main
from kmervae.errors import InputError
from kmervae.io.concat import split_output_paths
from kmervae.io.dataset import open_dataset, output_files


@pytest.fixture
def inputs(tmp_path):
    folder = tmp_path / "in"
    folder.mkdir()
    a = write_dataset(folder / "a", 40, seed=1)
    b = write_dataset(folder / "b", 25, seed=2, fmt="legacy")
    return a, b


# -- options ------------------------------------------------------------------------------------
OPTION_CASES = {
    "split-zero": (["--split", "0"], "--split"),
    "split-one": (["--split", "1"], "--split"),
    "split-negative": (["--split", "-0.5"], "--split"),
    "split-nan": (["--split", "nan"], "--split"),
    "split-text": (["--split", "most"], "--split"),
    "seed-negative": (["--shuffle", "--seed", "-1"], "--seed"),
    "seed-above-32-bit": (["--shuffle", "--seed", str(2**32)], "--seed"),
    "seed-fraction": (["--shuffle", "--seed", "1.5"], "--seed"),
    "memory-zero": (["--shuffle", "--memory", "0"], "--memory"),
    "memory-negative": (["--shuffle", "--memory", "-5"], "--memory"),
    "memory-nan": (["--shuffle", "--memory", "nan"], "--memory"),
    "memory-tiny": (["--shuffle", "--memory", "0.001"], "--memory"),
    "memory-beyond-the-machine": (["--shuffle", "--memory", "1e12"], "--memory"),
}


@pytest.mark.bad_input
@pytest.mark.parametrize("case", sorted(OPTION_CASES))
def test_out_of_range_option_is_a_usage_error(tmp_path, inputs, capsys, case):
    extra, needle = OPTION_CASES[case]
    out = tmp_path / "out"
    assert_refused(["concat", inputs[0].path, "-o", out, *extra], capsys, needle, code=2)
    assert_clean(tmp_path, out)


# -- inputs -------------------------------------------------------------------------------------
def _edit_column(folder: Path, column: str, row: int, value: float) -> None:
    values = np.load(folder / f"{column}.npy")
    values[row] = value
    np.save(folder / f"{column}.npy", values)


def _input_case(tmp_path: Path, a, b, case: str) -> tuple[list[object], tuple[str, ...]]:
    """(input arguments, needles) of one hostile input."""
    folder = a.path.parent
    if case == "missing-after-valid":
        return [a.path, b.path, folder / "nope"], ("nope", "no such dataset")
    if case == "folder-not-a-dataset":
        (folder / "plain").mkdir()
        return [a.path, folder / "plain"], ("plain", "not a profile dataset")
    if case == "text-file":
        (folder / "notes.csv").write_text("a,b\n")
        return [folder / "notes.csv"], ("notes.csv", "not a profile dataset")
    if case == "layouts-differ":
        from kmervae.kmers.layout import FeatureLayout

        c = write_dataset(folder / "c", 5, layout=FeatureLayout((3,)))
        return [a.path, c.path], ("layouts differ", str(a.path), str(c.path))
    if case == "duplicate-ids-across-inputs":
        dup = write_dataset(folder / "dup", 3, ids=["x", a.ids[7], "y"], seed=5)
        return [a.path, dup.path], ("duplicate record id", a.ids[7], "prefix_ids")
    if case == "given-twice":
        return [a.path, Path(str(folder) + "/../in/a")], ("given twice",)
    if case == "negative-length":
        _edit_column(a.path, "lengths", 9, -3)
        return [a.path], ("row 10", a.ids[9], "length -3")
    if case == "gc-above-one":
        _edit_column(a.path, "gc", 2, 1.5)
        return [b.path, a.path], ("row 3", a.ids[2], "G+C")
    if case == "nan-features":
        features = np.load(a.path / "features.npy")
        features[30, 0] = np.nan
        np.save(a.path / "features.npy", features)
        return [b.path, a.path], (str(a.path), "row 31", a.ids[30], "NaN")
    if case == "empty-id":
        txt = b.path.with_suffix(".txt")
        ids = txt.read_text().split("\n")
        ids[4] = ""
        txt.write_text("\n".join(ids))
        b.path.with_suffix(".json").unlink()  # an edited pair from elsewhere
        return [a.path, b.path], (txt.name, "line 5", "empty id")
    if case == "ids-of-another-run":
        txt = b.path.with_suffix(".txt")
        txt.write_text("".join(f"{i}\n" for i in reversed(b.ids)))
        return [a.path, b.path], ("do not belong together", b.path.name, txt.name)
    if case == "unfinished-write":
        dead = 2**22 + 4321  # above the default pid_max: no such process
        final = b.path.with_suffix(".txt")
        journal = final.with_name(f".{final.name}.tmp-{dead}.commit")
        journal.write_text(json.dumps({"pid": dead, "moves": [["x", final.name]]}))
        return [a.path, b.path], ("interrupted write", final.name)
    raise AssertionError(case)


INPUT_CASES = [
    "missing-after-valid",
    "folder-not-a-dataset",
    "text-file",
    "layouts-differ",
    "duplicate-ids-across-inputs",
    "given-twice",
    "negative-length",
    "gc-above-one",
    "nan-features",
    "empty-id",
    "ids-of-another-run",
    "unfinished-write",
]


@pytest.mark.bad_input
@pytest.mark.parametrize("shuffle", [False, True], ids=["plain", "shuffled-split"])
@pytest.mark.parametrize("case", INPUT_CASES)
def test_hostile_input_is_one_line_and_leaves_nothing(tmp_path, inputs, capsys, case, shuffle):
    args, needles = _input_case(tmp_path, *inputs, case)
    out = tmp_path / "out"
    extra = ["--shuffle", "--split", "0.5", "--memory", "0.05"] if shuffle else []
    assert_refused(["concat", *args, "-o", out, *extra], capsys, *needles, code=1)
    for planted in tmp_path.glob("in/.*.commit"):  # a reader leaves another run's journal be
        planted.unlink()
    assert_clean(tmp_path, out, *split_output_paths(out, "native"))


# -- outputs ------------------------------------------------------------------------------------
@pytest.mark.bad_input
@pytest.mark.parametrize("fmt", ["native", "legacy"])
def test_existing_output_is_refused_before_any_input_is_read(tmp_path, capsys, fmt):
    (tmp_path / "garbage.npy").write_bytes(b"not read: the output is refused first")
    out = tmp_path / "out"
    existing = out if fmt == "native" else tmp_path / "out.txt"  # one file of the pair is enough
    if fmt == "native":
        existing.mkdir()
    else:
        existing.write_text("keep\n")
    argv = ["concat", tmp_path / "garbage.npy", "-o", out, "--format", fmt]
    assert_refused(argv, capsys, str(existing), "already exists", code=1)
    assert existing.exists() and not leftovers(tmp_path)


@pytest.mark.bad_input
def test_split_with_one_side_existing_is_refused(tmp_path, inputs, capsys):
    out = tmp_path / "out"
    (tmp_path / "out.validation").mkdir()
    argv = ["concat", inputs[0].path, "-o", out, "--split", "0.5"]
    assert_refused(argv, capsys, "out.validation", "already exists", code=1)
    assert_clean(tmp_path, tmp_path / "out.train")


@pytest.mark.bad_input
@pytest.mark.parametrize("fmt", ["native", "legacy"])
def test_output_into_itself_with_force(tmp_path, inputs, capsys, fmt):
    a, b = inputs
    target = a.path if fmt == "native" else b.path.with_suffix("")
    argv = ["concat", a.path, b.path, "-o", target, "--format", fmt, "--force"]
    assert_refused(argv, capsys, "one of the inputs", code=1)
    assert read_ids(a.path) == a.ids and read_ids(b.path) == b.ids


@pytest.mark.bad_input
def test_output_folder_missing(tmp_path, inputs, capsys):
    out = tmp_path / "no" / "such" / "out"
    assert_refused(["concat", inputs[0].path, "-o", out], capsys, "does not exist", code=1)


@pytest.mark.bad_input
@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only folders")
def test_output_folder_read_only(tmp_path, inputs, capsys):
    folder = tmp_path / "ro"
    folder.mkdir()
    folder.chmod(0o555)
    try:
        assert_refused(["concat", inputs[0].path, "-o", folder / "out"], capsys, "not writable")
    finally:
        folder.chmod(0o755)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    "extra",
    [[], ["--shuffle", "--memory", "0.05"], ["--format", "legacy", "--split", "0.5"]],
    ids=["plain", "shuffled", "legacy-split"],
)
def test_full_disk_is_one_line_naming_the_output(tmp_path, capsys, extra):
    big = write_dataset(tmp_path / "big", 1200, seed=4)  # ~650 kB of features
    with small_disk(tmp_path, "256k") as disk:
        out = disk / "out"
        assert_refused(["concat", big.path, "-o", out, *extra], capsys, str(out), "no space")
        assert sorted(disk.iterdir()) == []


# -- kills --------------------------------------------------------------------------------------
def read_ids(path: Path) -> list[str]:
    return open_dataset(path).ids()


def _content(path: Path) -> tuple[list[str], bytes, bytes]:
    """What a reader gets from a dataset: ids, features and lengths."""
    ds = open_dataset(path)
    features = np.ascontiguousarray(ds.features, np.float32).tobytes()
    return ds.ids(), features, ds.lengths().tobytes()


def _group_content(paths: list[Path]) -> list[tuple[list[str], bytes, bytes]] | None:
    """The content of every dataset of a group; None when a reader refuses them all. A
    group that is only partly readable fails the test."""
    found = []
    for path in paths:
        try:
            found.append(_content(path))
        except InputError:
            found.append(None)
    if all(c is None for c in found):
        return None
    assert all(c is not None for c in found), f"half a group readable: {found}"
    return found  # type: ignore[return-value]


def _files(paths: list[Path], fmt: str) -> dict[str, object]:
    """Every output file's bytes, manifests without their provenance (which names the
    output and the time) and without logs."""
    snapshot: dict[str, object] = {}
    for path in paths:
        for file in output_files(path, fmt):
            members = sorted(file.iterdir()) if file.is_dir() else [file]
            for member in members:
                if member.suffix == ".log":
                    continue
                if member.suffix == ".json":
                    manifest = json.loads(member.read_text())
                    manifest.pop("provenance")
                    snapshot[f"{file.name}/{member.name}"] = manifest
                else:
                    snapshot[f"{file.name}/{member.name}"] = member.read_bytes()
    return snapshot


def _outputs(out: Path, fmt: str, split: bool) -> list[Path]:
    if split:
        return split_output_paths(out, fmt)
    return [out if fmt == "native" else out.with_name(out.name + ".npy")]


def _killed_at_rename(argv: list[object], at: int) -> None:
    """Run ``kmervae ARGV`` in a forked child that SIGKILLs itself at its ``at``-th rename
    (the commit of the outputs): no cleanup code runs, as with kill -9."""
    pid = os.fork()
    if pid == 0:  # the child
        real, calls = os.rename, [0]

        def rename(src, dst, *args, **kwargs):
            calls[0] += 1
            if calls[0] == at:
                os.kill(os.getpid(), signal.SIGKILL)
            return real(src, dst, *args, **kwargs)

        os.rename = rename  # type: ignore[assignment]
        try:
            main([str(a) for a in argv])
        finally:
            os._exit(0)
    _, status = os.waitpid(pid, 0)
    assert os.WIFSIGNALED(status), f"the run had fewer than {at} renames"


# (format, split, output exists and is replaced with --force, renames of the commit)
RENAME_SCENARIOS = {
    "legacy-replaced": ("legacy", False, True, 6),
    "native-split-replaced": ("native", True, True, 4),
    "legacy-split-new": ("legacy", True, False, 6),
}
RENAME_CASES = [(name, at) for name, s in RENAME_SCENARIOS.items() for at in range(1, s[3] + 1)]


@pytest.mark.kill_point
@pytest.mark.parametrize(("scenario", "at"), RENAME_CASES)
def test_sigkill_at_each_rename_of_the_commit(tmp_path, inputs, capsys, scenario, at):
    fmt, split, replace, _ = RENAME_SCENARIOS[scenario]
    a, b = inputs
    argv: list[object] = ["concat", a.path, b.path, "--format", fmt, "--shuffle", "-q"]
    argv += ["--seed", "5"] + (["--split", "0.6"] if split else [])
    (tmp_path / "ref").mkdir()
    (tmp_path / "run").mkdir()
    ref, out = tmp_path / "ref" / "set", tmp_path / "run" / "set"
    assert run_cli([*argv, "-o", ref], capsys)[0] == 0
    expected = _group_content(_outputs(ref, fmt, split))
    old = None
    if replace:  # an earlier output, with another order, that --force replaces
        assert run_cli([*argv, "-o", out, "--seed", "6"], capsys)[0] == 0
        old = _group_content(_outputs(out, fmt, split))
        argv.append("--force")
    _killed_at_rename([*argv, "-o", out], at)
    seen = _group_content(_outputs(out, fmt, split))
    assert seen in (None, old, expected)  # never a mix of two runs
    assert run_cli([*argv, "-o", out], capsys)[0] == 0
    assert _files(_outputs(out, fmt, split), fmt) == _files(_outputs(ref, fmt, split), fmt)
    assert_clean(tmp_path)


@pytest.mark.kill_point
def test_ctrl_c_during_the_commit_leaves_nothing(tmp_path, inputs, capsys, monkeypatch):
    a, b = inputs
    real, calls = os.rename, []

    def rename(src, dst):
        calls.append(src)
        if len(calls) == 4:
            raise KeyboardInterrupt
        real(src, dst)

    monkeypatch.setattr(os, "rename", rename)
    out = tmp_path / "set"
    argv = ["concat", a.path, b.path, "-o", out, "--format", "legacy", "--split", "0.5"]
    code, err = run_cli(argv, capsys)
    assert code == 130 and err.strip().endswith("interrupted"), err
    assert len(calls) > 4  # three outputs had moved in and were moved back out
    assert not leftovers(tmp_path) and not list(tmp_path.glob("set.*"))


def _big_inputs(tmp_path: Path) -> list[Path]:
    folder = tmp_path / "big"
    folder.mkdir()
    a = write_dataset(folder / "a", 3000, seed=1)
    b = write_dataset(folder / "b", 2000, seed=2, fmt="legacy")
    return [a.path, b.path]


def _kill_when_busy(argv: list[object], folder: Path, delay: float) -> int:
    """Start ``kmervae ARGV``, wait until it writes temporaries in ``folder``, then SIGKILL it
    ``delay`` seconds later; returns its exit status (0 when it finished first)."""
    proc = kmervae_process([str(a) for a in argv])
    deadline = time.monotonic() + 20
    while proc.poll() is None and not leftovers(folder) and time.monotonic() < deadline:
        time.sleep(0.002)
    time.sleep(delay)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    return proc.returncode


@pytest.mark.kill_point
@pytest.mark.parametrize(
    ("fmt", "split", "delay"),
    [
        ("native", False, 0.0),
        ("native", False, 0.25),
        ("legacy", True, 0.1),
        ("legacy", True, 0.4),
    ],
)
def test_sigkill_at_random_points_then_rerun(tmp_path, capsys, fmt, split, delay):
    inputs = _big_inputs(tmp_path)
    argv: list[object] = ["concat", *inputs, "--format", fmt, "--shuffle", "-q"]
    argv += ["--seed", "9", "--memory", "0.05"] + (["--split", "0.7"] if split else [])
    (tmp_path / "ref").mkdir()
    (tmp_path / "run").mkdir()
    ref, out = tmp_path / "ref" / "set", tmp_path / "run" / "set"
    assert run_cli([*argv, "-o", ref], capsys)[0] == 0
    expected = _group_content(_outputs(ref, fmt, split))
    status = _kill_when_busy([*argv, "-o", out], tmp_path / "run", delay)
    seen = _group_content(_outputs(out, fmt, split))
    assert seen in (None, expected)
    if status != 0:
        assert status == -signal.SIGKILL
    code, err = run_cli([*argv, "-o", out], capsys)
    if seen is not None and code != 0:  # it had finished: the output stands
        assert "already exists" in err
    else:
        assert code == 0, err
    assert _files(_outputs(out, fmt, split), fmt) == _files(_outputs(ref, fmt, split), fmt)
    assert_clean(tmp_path)


@pytest.mark.kill_point
@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_sigterm_and_sigint_clean_up(tmp_path, sig):
    inputs = _big_inputs(tmp_path)
    out = tmp_path / "set"
    argv = ["concat", *inputs, "-o", out, "--shuffle", "--split", "0.5", "--memory", "0.05"]
    proc = kmervae_process([str(a) for a in argv])
    while proc.poll() is None and not leftovers(tmp_path):
        time.sleep(0.002)
    proc.send_signal(sig)
    _, err = proc.communicate()
    outputs = split_output_paths(out, "native")
    if not check_interrupted(proc.returncode, err, sig, "concat") or outputs[0].exists():
        # it finished, or the signal came after the commit: both sides are whole
        assert all(p.is_dir() for p in outputs), err
        return
    assert_clean(tmp_path, *outputs)


# -- reproducibility ---------------------------------------------------------------------------
@pytest.mark.parametrize("fmt", ["native", "legacy"])
def test_same_seed_gives_byte_identical_outputs(tmp_path, inputs, capsys, fmt):
    a, b = inputs
    argv = ["concat", a.path, b.path, "--format", fmt, "--shuffle", "--split", "0.7", "-q"]
    for name, extra in (("one", ["--seed", "3"]), ("two", ["--seed", "3", "--memory", "0.02"])):
        assert run_cli([*argv, "-o", tmp_path / name, *extra], capsys)[0] == 0
    one = _files(_outputs(tmp_path / "one", fmt, True), fmt)
    two = _files(_outputs(tmp_path / "two", fmt, True), fmt)
    assert len(one) >= 6
    assert {k.replace("one", "two"): v for k, v in one.items()} == two
    assert run_cli([*argv, "-o", tmp_path / "other", "--seed", "4"], capsys)[0] == 0
    other = _files(_outputs(tmp_path / "other", fmt, True), fmt)
    assert {k.replace("one", "other"): v for k, v in one.items()} != other
