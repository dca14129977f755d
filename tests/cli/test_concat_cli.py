"""``kmervae concat`` end to end, in-process: outputs, logs, and one-line errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
from profile_factory import hidden_leftovers, read_back, write_dataset

from kmervae.cli import main
from kmervae.kmers.layout import FeatureLayout


@pytest.fixture
def inputs(tmp_path):
    a = write_dataset(tmp_path / "a", 30, seed=1)
    b = write_dataset(tmp_path / "b", 20, seed=2, fmt="legacy", gzip_ids=True)
    return a, b


def test_concat_native_with_log_and_provenance(tmp_path, inputs, capsys):
    a, b = inputs
    out = tmp_path / "joined"
    assert main(["concat", str(a.path), str(b.path), "-o", str(out)]) == 0
    assert read_back(out).ids == a.ids + b.ids
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["provenance"]["command"][:2] == ["kmervae", "concat"]
    assert [i["path"] for i in manifest["provenance"]["inputs"]] == [str(a.path), str(b.path)]
    log = (out / "kmervae.log").read_text()
    assert "command: kmervae concat" in log and "50 rows written" in log
    assert "50 rows written" in capsys.readouterr().err
    assert hidden_leftovers(tmp_path) == []


def test_concat_shuffle_split_legacy(tmp_path, inputs):
    a, b = inputs
    argv = ["concat", str(a.path), str(b.path), "-o", str(tmp_path / "set"), "-q"]
    argv += ["--format", "legacy", "--shuffle", "--split", "0.8", "--seed", "3"]
    argv += ["--memory", "0.01"]
    assert main(argv) == 0
    ids = {}
    for side in ("train", "validation"):
        for ext in ("npy", "txt", "json", "log"):
            assert (tmp_path / f"set.{side}.{ext}").exists()
        ids[side] = (tmp_path / f"set.{side}.txt").read_text().split()
        matrix = np.load(tmp_path / f"set.{side}.npy")
        assert matrix.shape[0] == len(ids[side])
        log = (tmp_path / f"set.{side}.log").read_text()
        assert "seed: 3" in log
    assert len(ids["train"]) == 40 and len(ids["validation"]) == 10
    assert sorted(ids["train"] + ids["validation"]) == sorted(a.ids + b.ids)
    assert hidden_leftovers(tmp_path) == []
    # the same seed from the command line gives the same split
    argv[4] = str(tmp_path / "again")
    assert main(argv) == 0
    assert (tmp_path / "again.train.txt").read_text().split() == ids["train"]


def test_concat_float16_and_prefix_ids(tmp_path, inputs):
    a, _ = inputs
    dup = write_dataset(tmp_path / "dup", 4, ids=a.ids[:4], seed=7)
    out = tmp_path / "half"
    argv = ["concat", str(a.path), str(dup.path), "-o", str(out), "--dtype", "float16"]
    assert main([*argv, "--prefix-ids", "-q"]) == 0
    assert json.loads((out / "manifest.json").read_text())["dtype"] == "float16"
    assert read_back(out).ids[-1] == f"dup_{a.ids[3]}"


def _error_cases(tmp_path, a, b):
    c = write_dataset(tmp_path / "c", 5, layout=FeatureLayout((3,)))
    dup = write_dataset(tmp_path / "dup", 3, ids=a.ids[:3], seed=5)
    out = str(tmp_path / "out")
    return {
        "layout": (["concat", str(a.path), str(c.path), "-o", out], "layouts differ"),
        "duplicate": (["concat", str(a.path), str(dup.path), "-o", out], "duplicate record id"),
        "duplicate-shuffled": (
            ["concat", str(a.path), str(dup.path), "-o", out, "--shuffle", "--split", "0.5"],
            "duplicate record id",
        ),
        "missing": (["concat", str(a.path), str(tmp_path / "nope"), "-o", out], "no such"),
        "empty-side": (["concat", str(dup.path), "-o", out, "--split", "0.1"], "no train"),
        "legacy-half": (
            ["concat", str(a.path), "-o", out, "--format", "legacy", "--dtype", "float16"],
            "float32 only",
        ),
        "into-input": (
            ["concat", str(a.path), str(b.path), "-o", str(a.path), "--force"],
            "one of the inputs",
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "layout",
        "duplicate",
        "duplicate-shuffled",
        "missing",
        "empty-side",
        "legacy-half",
        "into-input",
    ],
)
def test_errors_are_one_line_and_leave_nothing(tmp_path, inputs, capsys, case):
    a, b = inputs
    argv, message = _error_cases(tmp_path, a, b)[case]
    before = sorted(p.name for p in tmp_path.iterdir())
    capsys.readouterr()
    assert main(argv) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1, err
    assert err[0].startswith("kmervae concat: error: ") and message in err[0]
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert read_back(a.path).ids == a.ids  # inputs untouched


def test_existing_output_needs_force(tmp_path, inputs, capsys):
    a, _ = inputs
    out = tmp_path / "out"
    assert main(["concat", str(a.path), "-o", str(out), "-q"]) == 0
    assert main(["concat", str(a.path), "-o", str(out), "-q", "--shuffle"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert read_back(out).ids == a.ids
    assert main(["concat", str(a.path), "-o", str(out), "-q", "--shuffle", "--force"]) == 0
    assert sorted(read_back(out).ids) == sorted(a.ids)


def test_bad_fraction_text_is_a_usage_error(tmp_path, inputs):
    with pytest.raises(SystemExit) as exit_info:
        main(["concat", str(inputs[0].path), "-o", str(tmp_path / "o"), "--split", "most"])
    assert exit_info.value.code == 2
