"""Hostile input for ``evaluate``: out-of-range options, outputs that exist, missing inputs,
and rows the model was trained on, which are never scored as held out without saying so."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from embed_factory import SMALL, random_profiles, small_encoder, write_profiles
from hostile import assert_refused, run_cli

from kmervae.io.concat import concat_datasets
from kmervae.io.dataset import open_dataset
from kmervae.kmers.layout import FeatureLayout
from kmervae.model.data import random_split
from kmervae.model.files import save_model


def _model_trained_on(folder: Path, train: Path, **extra: object) -> Path:
    ds = open_dataset(train)
    record = {"path": str(train), "n_rows": ds.n_rows, "ids_sha256": ds.manifest["ids_sha256"]}
    card = {"training_data": {**record, **extra}, "training": {"seed": 3, "val_fraction": 0.25}}
    return save_model(small_encoder(), folder, card=card)


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile-evaluate")
    train = write_profiles(
        root / "train", random_profiles(60, SMALL.layout, seed=1), ids=[f"t{i}" for i in range(60)]
    )
    other = write_profiles(
        root / "other", random_profiles(60, SMALL.layout, seed=2), ids=[f"o{i}" for i in range(60)]
    )
    both = concat_datasets([train, other], root / "both")
    model = _model_trained_on(root / "model", train)
    return {"root": root, "train": train, "other": other, "both": both.outputs[0], "model": model}


def _fidelity(model, dataset):
    options = ["--pool-size", "40", "--queries", "10", "--neighbours", "5"]
    return ["evaluate", "fidelity", model, dataset, *options]


# -- options -------------------------------------------------------------------------------

FIDELITY_OPTIONS = [
    ("--bootstrap", "-5"),
    ("--bootstrap", "2000000"),
    ("--queries", "0"),
    ("--neighbours", "0"),
    ("--pool-size", "1"),
    ("--fit-rows", "1"),
    ("--seed", "-1"),
    ("--seed", str(2**32)),
    ("--threads", "-2"),
    ("--threads", "nine"),
]
TAXONOMY_OPTIONS = [
    ("-k", "0,5"),
    ("--length-bins", "2000,-1"),
    ("--max-queries", "0"),
    ("--distance-threshold", "-0.5"),
    ("--distance-threshold", "nan"),
]


@pytest.mark.bad_input
@pytest.mark.parametrize(("option", "value"), FIDELITY_OPTIONS)
def test_fidelity_option_out_of_range(world, capsys, option, value):
    argv = ["evaluate", "fidelity", world["model"], world["other"], option, value]
    assert_refused(argv, capsys, option, code=2)


@pytest.mark.bad_input
@pytest.mark.parametrize(("option", "value"), TAXONOMY_OPTIONS)
def test_taxonomy_option_out_of_range(world, tmp_path, capsys, option, value):
    labels = tmp_path / "labels.tsv"
    labels.write_text("id\tgenome\n")
    argv = ["evaluate", "taxonomy", "tetra", world["other"], "--labels", labels, option, value]
    assert_refused(argv, capsys, option, code=2)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("protocol", "option", "value"),
    [
        ("reconstruction", "--max-rows", "0"),
        ("clusters", "-k", "0"),
        ("clusters", "--min-length", "-1"),
        ("clusters", "--fit-rows", "0"),
        ("matrix", "--max-rows", "-3"),
        ("matrix", "--bootstrap", "-5"),
    ],
)
def test_other_protocol_options_out_of_range(world, tmp_path, capsys, protocol, option, value):
    head = {
        "reconstruction": ["evaluate", "reconstruction", world["model"], world["other"]],
        "clusters": ["evaluate", "clusters", tmp_path / "clusters.tsv"],
        "matrix": ["evaluate", "matrix", "--models", "tetra", "--datasets", world["other"]],
    }[protocol]
    if protocol == "matrix":
        head += ["--protocol", "fidelity", "-o", tmp_path / "m"]
    assert_refused([*head, option, value], capsys, option, code=2)


# -- outputs and inputs, before any work ---------------------------------------------------


@pytest.mark.bad_input
def test_existing_report_is_refused_before_loading(world, tmp_path, capsys):
    report = tmp_path / "r.json"
    report.write_text("mine")
    broken = tmp_path / "broken"
    shutil.copytree(world["model"], broken)
    (broken / "model.safetensors").unlink()
    argv = [*_fidelity(broken, world["other"]), "--json", report]
    assert_refused(argv, capsys, "r.json", "already exists", code=1)
    assert report.read_text() == "mine"


@pytest.mark.bad_input
def test_existing_matrix_output_is_refused_before_work(world, tmp_path, capsys):
    (tmp_path / "m.json").write_text("mine")
    argv = ["evaluate", "matrix", "--models", tmp_path / "nowhere", "--datasets", world["other"]]
    argv += ["--protocol", "fidelity", "-o", tmp_path / "m"]
    assert_refused(argv, capsys, "m.json", "already exists", code=1)
    assert not (tmp_path / "m.md").exists() and (tmp_path / "m.json").read_text() == "mine"


@pytest.mark.bad_input
def test_report_in_a_missing_folder(world, tmp_path, capsys):
    argv = [*_fidelity(world["model"], world["other"]), "--json", tmp_path / "no" / "r.json"]
    assert_refused(argv, capsys, "does not exist", code=1)


@pytest.mark.bad_input
@pytest.mark.parametrize("what", ["dataset", "run", "model"])
def test_missing_inputs(world, tmp_path, capsys, what):
    model, dataset, extra = world["model"], world["other"], []
    if what == "dataset":
        dataset = tmp_path / "nowhere"
    elif what == "run":
        extra = ["--run", tmp_path]
    else:
        model = tmp_path / "nowhere"
    assert_refused([*_fidelity(model, dataset), *extra], capsys, str(tmp_path), code=1)


@pytest.mark.bad_input
def test_model_of_another_layout(world, tmp_path, capsys):
    three = FeatureLayout((3, 2, 1))
    ds = write_profiles(tmp_path / "three", random_profiles(50, three), layout=three)
    line = assert_refused(_fidelity(world["model"], ds), capsys, "k-groups", code=1)
    assert str(ds) in line and "model" in line, line


@pytest.mark.bad_input
def test_non_finite_profiles(world, tmp_path, capsys):
    x = random_profiles(50, SMALL.layout, seed=4)
    x[7, 2] = np.nan
    ds = write_profiles(tmp_path / "nan", x, ids=[f"n{i}" for i in range(50)])
    argv = [*_fidelity("tetra", ds), "--pool-size", "50"]  # every row
    assert_refused(argv, capsys, str(ds), "row 8", "n7", code=1)


# -- rows the model was trained on ---------------------------------------------------------


@pytest.mark.bad_input
def test_training_rows_in_a_concat_are_refused(world, capsys):
    line = assert_refused(_fidelity(world["model"], world["both"]), capsys, code=1)
    assert "60 of 120 evaluated rows" in line and "training rows" in line, line
    assert "training_rows" in line and str(world["train"]) in line, line


def test_training_rows_excluded_or_included_on_request(world, tmp_path, capsys):
    out = tmp_path / "r.json"
    argv = [*_fidelity(world["model"], world["both"]), "--training-rows", "exclude"]
    code, err = run_cli([*argv, "--json", out, "--bootstrap", "0"], capsys)
    assert code == 0, err
    assert "left out (training_rows exclude): 60 rows remain" in err
    assert "less 60 training rows" in json.loads(out.read_text())["held_out"]
    argv[-1] = "include"
    code, err = run_cli([*argv, "--bootstrap", "0"], capsys)
    assert code == 0 and "scored anyway" in err, err


def test_held_out_data_and_same_ids_of_other_contigs_pass(world, tmp_path, capsys):
    code, err = run_cli([*_fidelity(world["model"], world["other"]), "--bootstrap", "0"], capsys)
    assert code == 0, err
    # another assembly's contigs that happen to carry the training ids (other lengths)
    x = random_profiles(50, SMALL.layout, seed=9)
    alike = write_profiles(tmp_path / "alike", x, ids=[f"t{i}" for i in range(50)])
    lengths = np.load(alike / "lengths.npy")
    np.save(alike / "lengths.npy", lengths + 1)
    code, err = run_cli([*_fidelity(world["model"], alike), "--bootstrap", "0"], capsys)
    assert code == 0, err


def test_training_data_itself_uses_the_recorded_split(world, tmp_path, capsys):
    # the card says no separate validation set: the seeded split's validation rows are fair
    model = _model_trained_on(tmp_path / "model", world["train"], validation=None)
    out = tmp_path / "r.json"
    argv = [*_fidelity(model, world["train"]), "--pool-size", "15"]
    code, err = run_cli([*argv, "--bootstrap", "0", "--json", out], capsys)
    assert code == 0, err
    result = json.loads(out.read_text())
    assert result["held_out"].startswith("the validation part recorded in"), result["held_out"]
    assert result["pool"] == len(random_split(60, 0.25, 3).validation) == 15
    # an older card that does not say whether a validation set was separate: refused, with
    # the hint to name the run
    line = assert_refused(_fidelity(world["model"], world["train"]), capsys, code=1)
    assert "60 of 60" in line and "run_dir" in line, line


@pytest.mark.bad_input
def test_training_data_moved_after_a_prefixed_concat(world, tmp_path, capsys):
    train = Path(shutil.copytree(world["train"], tmp_path / "train"))
    model = _model_trained_on(tmp_path / "model", train)
    mixed = concat_datasets([train, world["other"]], tmp_path / "mixed", prefix_ids=True)
    shutil.rmtree(train)
    line = assert_refused(_fidelity(model, mixed.outputs[0]), capsys, code=1)
    assert "was built from the training data" in line, line


def test_model_without_a_training_record_warns(world, tmp_path, capsys):
    bare = save_model(small_encoder(), tmp_path / "bare")
    code, err = run_cli([*_fidelity(bare, world["both"]), "--bootstrap", "0"], capsys)
    assert code == 0, err
    assert "records no training data" in err


@pytest.mark.bad_input
def test_training_data_in_place_after_a_prefixed_concat(world, tmp_path, capsys):
    # the prefixed ids match no training id, but the concat records the training data's
    # ids checksum among its inputs
    train = Path(shutil.copytree(world["train"], tmp_path / "train"))
    model = _model_trained_on(tmp_path / "model", train)
    mixed = concat_datasets([train, world["other"]], tmp_path / "mixed", prefix_ids=True)
    line = assert_refused(_fidelity(model, mixed.outputs[0]), capsys, code=1)
    assert "was built from the training data" in line, line
