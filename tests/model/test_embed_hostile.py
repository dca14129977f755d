"""Hostile input for ``embed``, ``export`` and ``import-keras``: one line naming the culprit,
no traceback, nothing left that looks complete; ``embed`` stopped at random points and rerun
gives the embeddings of an uninterrupted run; the embeddings do not depend on the threads."""

from __future__ import annotations

import json
import random
import signal
import zipfile
from pathlib import Path

import numpy as np
import onnx
import pytest
from embed_factory import SMALL, random_profiles, small_encoder, write_model, write_profiles
from hostile import (
    assert_clean,
    assert_refused,
    check_interrupted,
    interrupt,
    leftovers,
    read_only_folder,
    small_disk,
)
from keras_factory import write_keras_encoder

from kmervae.cli import main
from kmervae.io.embeddings import open_embeddings
from kmervae.kmers.layout import FeatureLayout
from kmervae.model.embed import embed_profiles
from kmervae.model.files import save_model
from kmervae.model.onnx_export import export_onnx


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A model folder, its ONNX export, a Keras file and small datasets."""
    root = tmp_path_factory.mktemp("hostile-embed")
    model, encoder = write_model(root / "model")
    onnx_file = export_onnx(encoder, root / "model.onnx", verify=False).path
    keras = write_keras_encoder(root / "enc.keras", small_encoder())
    ds = write_profiles(root / "ds", random_profiles(40, SMALL.layout, seed=1))
    three = FeatureLayout((3, 2, 1))
    other = write_profiles(root / "three", random_profiles(10, three), layout=three)
    return {
        "root": root,
        "model": model,
        "onnx": onnx_file,
        "keras": keras,
        "ds": ds,
        "three": other,
    }


def _copy_model(world, tmp_path: Path) -> Path:
    import shutil

    return Path(shutil.copytree(world["model"], tmp_path / "model"))


def _damage_model(folder: Path, how: str) -> Path:
    if how == "config-not-json":
        (folder / "config.json").write_text("{not json")
    elif how == "config-without-model":
        meta = json.loads((folder / "config.json").read_text())
        del meta["model"]
        (folder / "config.json").write_text(json.dumps(meta))
    elif how == "weights-truncated":
        data = (folder / "model.safetensors").read_bytes()
        (folder / "model.safetensors").write_bytes(data[: len(data) // 2])
    elif how == "weights-missing":
        (folder / "model.safetensors").unlink()
    elif how == "card-not-json":
        (folder / "card.json").write_text("[1, 2")
    return folder


# -- embed ---------------------------------------------------------------------------------


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("how", "needle"),
    [
        ("config-not-json", "config.json: not valid JSON"),
        ("config-without-model", "config.json: no usable model config"),
        ("weights-truncated", "model.safetensors: cannot read the weights"),
        ("weights-missing", "model.safetensors: cannot read the weights"),
        ("card-not-json", "card.json: not valid JSON"),
    ],
)
def test_embed_corrupt_model_folder(world, tmp_path, capsys, how, needle):
    model = _damage_model(_copy_model(world, tmp_path), how)
    out = tmp_path / "emb"
    assert_refused(["embed", model, world["ds"], "-o", out], capsys, needle, code=1)
    assert_clean(tmp_path, out)


@pytest.mark.bad_input
def test_embed_corrupt_checkpoint(world, tmp_path, capsys):
    pt = tmp_path / "last.pt"
    pt.write_bytes(b"PK\x03\x04 not really a checkpoint")
    out = tmp_path / "emb"
    assert_refused(["embed", pt, world["ds"], "-o", out], capsys, "last.pt", code=1)
    assert_clean(tmp_path, out)


@pytest.mark.bad_input
def test_embed_model_of_another_layout_names_both(world, tmp_path, capsys):
    out = tmp_path / "emb"
    line = assert_refused(["embed", world["model"], world["three"], "-o", out], capsys, code=1)
    assert str(world["three"]) in line and str(world["model"]) in line, line
    assert "k-groups 3,2,1" in line and "k-groups 4,3,2,1" in line, line
    assert_clean(tmp_path, out)


@pytest.mark.bad_input
def test_embed_onnx_that_is_not_an_encoder(world, tmp_path, capsys):
    from onnx import TensorProto, helper

    graph = helper.make_graph(
        [helper.make_node("Identity", ["x"], ["y"])],
        "other",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [None, 180])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [None, 180])],
    )
    foreign = tmp_path / "foreign.onnx"
    onnx.save(helper.make_model(graph), foreign)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x00\x01 not protobuf" * 10)
    out = tmp_path / "emb"
    assert_refused(["embed", foreign, world["ds"], "-o", out], capsys, "not a kmervae ONNX")
    assert_refused(["embed", garbage, world["ds"], "-o", out], capsys, "garbage.onnx")
    assert_clean(tmp_path, out)


@pytest.mark.bad_input
@pytest.mark.parametrize("what", ["missing-model", "missing-dataset", "empty-dataset"])
def test_embed_missing_or_empty_inputs(world, tmp_path, capsys, what):
    model, ds = world["model"], world["ds"]
    needle = {"missing-model": "no such model", "missing-dataset": "nowhere"}.get(what, "no rows")
    if what == "missing-model":
        model = tmp_path / "nowhere"
    elif what == "missing-dataset":
        ds = tmp_path / "nowhere"
    else:
        ds = write_profiles(tmp_path / "empty", np.zeros((0, SMALL.n_features), np.float32))
    out = tmp_path / "emb"
    assert_refused(["embed", model, ds, "-o", out], capsys, needle, code=1)
    assert_clean(tmp_path, out)


@pytest.mark.bad_input
@pytest.mark.parametrize("value", [np.nan, np.inf, -np.inf])
def test_embed_non_finite_profile_names_the_row(world, tmp_path, capsys, value):
    x = random_profiles(30, SMALL.layout, seed=3)
    x[17, 5] = value
    ds = write_profiles(tmp_path / "bad", x)
    out = tmp_path / "emb"
    argv = ["embed", world["model"], ds, "-o", out, "--batch-size", "8"]
    assert_refused(argv, capsys, "row 18", "c17", code=1)
    assert_clean(tmp_path, out)


@pytest.mark.bad_input
def test_embed_ids_and_rows_disagree(world, tmp_path, capsys):
    ds = write_profiles(tmp_path / "short", random_profiles(12, SMALL.layout))
    lines = (ds / "ids.txt").read_text().splitlines()
    (ds / "ids.txt").write_text("\n".join(lines[:-2]) + "\n")
    out = tmp_path / "emb"
    assert_refused(["embed", world["model"], ds, "-o", out], capsys, "ids", code=1)
    assert_clean(tmp_path, out)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("--batch-size", "0"),
        ("--batch-size", str(2**21)),
        ("--batch-size", "many"),
        ("--threads", "-1"),
        ("--threads", "5000"),
    ],
)
def test_embed_out_of_range_options(world, tmp_path, capsys, option, value):
    out = tmp_path / "emb"
    argv = ["embed", world["model"], world["ds"], "-o", out, option, value]
    assert_refused(argv, capsys, option, value, code=2)
    assert_clean(tmp_path, out)


@pytest.mark.bad_input
def test_embed_existing_output_is_refused_before_loading(world, tmp_path, capsys):
    out = tmp_path / "emb"
    out.mkdir()
    (out / "keep.txt").write_text("mine")
    broken = _damage_model(_copy_model(world, tmp_path), "weights-missing")
    assert_refused(["embed", broken, world["ds"], "-o", out], capsys, "already exists", code=1)
    assert (out / "keep.txt").read_text() == "mine"


@pytest.mark.bad_input
def test_embed_unwritable_output_folder(world, tmp_path, capsys):
    missing = tmp_path / "no" / "emb"
    assert_refused(["embed", world["model"], world["ds"], "-o", missing], capsys, "does not exist")
    with read_only_folder(tmp_path) as folder:
        out = folder / "emb"
        assert_refused(["embed", world["model"], world["ds"], "-o", out], capsys, str(folder))
        assert not out.exists()


@pytest.mark.bad_input
def test_embed_full_disk(world, tmp_path, capsys):
    ds = write_profiles(tmp_path / "big", random_profiles(6000, SMALL.layout, seed=4))
    with small_disk(tmp_path, "128k") as disk:
        out = disk / "emb"
        argv = ["embed", world["model"], ds, "-o", out, "--batch-size", "500"]
        assert_refused(argv, capsys, str(out), code=1)
        assert list(disk.iterdir()) == []


# -- export --------------------------------------------------------------------------------


@pytest.mark.bad_input
@pytest.mark.parametrize("opset", ["1", "6", "24", "99", "x"])
def test_export_opset_out_of_range(world, tmp_path, capsys, opset):
    out = tmp_path / "x.onnx"
    argv = ["export", world["model"], "-o", out, "--opset", opset]
    assert_refused(argv, capsys, "argument --opset", code=2)
    assert_clean(tmp_path, out)


def test_export_writes_the_opset_asked_for(world, tmp_path, capsys):
    out = tmp_path / "x.onnx"
    assert main(["export", str(world["model"]), "-o", str(out), "--opset", "11", "-q"]) == 0
    opsets = {o.domain: o.version for o in onnx.load(str(out)).opset_import}
    assert opsets.get("", opsets.get("ai.onnx")) == 11


@pytest.mark.bad_input
@pytest.mark.parametrize("how", ["missing", "config-not-json", "weights-truncated"])
def test_export_bad_model(world, tmp_path, capsys, how):
    model = tmp_path / "nowhere"
    if how != "missing":
        model = _damage_model(_copy_model(world, tmp_path), how)
    out = tmp_path / "x.onnx"
    assert_refused(["export", model, "-o", out], capsys, str(model), code=1)
    assert_clean(tmp_path, out)


@pytest.mark.bad_input
def test_export_existing_output_is_refused_before_loading(world, tmp_path, capsys):
    out = tmp_path / "x.onnx"
    out.write_bytes(b"mine")
    broken = _damage_model(_copy_model(world, tmp_path), "weights-missing")
    assert_refused(["export", broken, "-o", out], capsys, "already exists", code=1)
    assert out.read_bytes() == b"mine"


@pytest.mark.bad_input
def test_export_full_disk(world, tmp_path, capsys):
    with small_disk(tmp_path, "8k") as disk:
        out = disk / "x.onnx"
        line = assert_refused(["export", world["model"], "-o", out], capsys, code=1)
        assert str(out) in line, line
        assert list(disk.iterdir()) == []


# -- import-keras --------------------------------------------------------------------------


def _damaged_keras(source: Path, target: Path, how: str) -> Path:
    data = source.read_bytes()
    if how == "truncated-zip":
        target.write_bytes(data[: len(data) // 2])
    elif how == "truncated-h5":
        with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
            for info in zin.infolist():
                member = zin.read(info)
                if info.filename.endswith(".h5"):
                    member = member[: len(member) // 2]
                zout.writestr(info, member)
    elif how == "bad-crc":
        with zipfile.ZipFile(source) as zin, zipfile.ZipFile(target, "w") as zout:
            for info in zin.infolist():
                zout.writestr(info, zin.read(info), compress_type=zipfile.ZIP_STORED)
        raw = bytearray(target.read_bytes())
        at = raw.find(b"HDF")  # inside the stored weights: the CRC no longer matches
        raw[at + 200] ^= 0xFF
        target.write_bytes(bytes(raw))
    return target


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("how", "needle"),
    [
        ("truncated-zip", "not a zip archive"),
        ("truncated-h5", "not a readable HDF5 file"),
        ("bad-crc", "damaged .keras archive"),
    ],
)
def test_import_keras_damaged_file(world, tmp_path, capsys, how, needle):
    keras = _damaged_keras(world["keras"], tmp_path / "bad.keras", how)
    out = tmp_path / "imported"
    assert_refused(["import-keras", keras, "-o", out], capsys, "bad.keras", needle, code=1)
    assert_clean(tmp_path, out)


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("ks", "code", "needle"),
    [("0,3", 2, "argument --ks"), ("7", 2, "argument --ks"), ("4,4", 2, "must be distinct")],
)
def test_import_keras_bad_ks(world, tmp_path, capsys, ks, code, needle):
    out = tmp_path / "imported"
    argv = ["import-keras", world["keras"], "-o", out, "--ks", ks]
    assert_refused(argv, capsys, needle, code=code)
    assert_clean(tmp_path, out)


@pytest.mark.bad_input
def test_import_keras_missing_file_and_existing_output(world, tmp_path, capsys):
    out = tmp_path / "imported"
    assert_refused(["import-keras", tmp_path / "none.keras", "-o", out], capsys, "none.keras")
    out.mkdir()
    assert_refused(["import-keras", world["keras"], "-o", out], capsys, "already exists")


@pytest.mark.bad_input
def test_import_keras_full_disk(world, tmp_path, capsys):
    with small_disk(tmp_path, "8k") as disk:
        out = disk / "imported"
        line = assert_refused(["import-keras", world["keras"], "-o", out], capsys, code=1)
        assert str(out) in line, line
        assert list(disk.iterdir()) == []


# -- interruptions and reproducibility -----------------------------------------------------


@pytest.fixture(scope="module")
def long_run(world):
    """A dataset that takes a few seconds to embed one row at a time, and its embeddings
    from an uninterrupted run."""
    root = world["root"]
    ds = write_profiles(root / "long", random_profiles(20_000, SMALL.layout, seed=5))
    reference = root / "reference"
    assert main(["embed", str(world["model"]), str(ds), "-o", str(reference), "-q"]) == 0
    return ds, reference


_KILLS = random.Random(20240607)


@pytest.mark.kill_point
@pytest.mark.parametrize(
    ("sig", "after"),
    [
        (signal.SIGKILL, round(_KILLS.uniform(0.0, 0.3), 3)),
        (signal.SIGKILL, round(_KILLS.uniform(0.3, 1.0), 3)),
        (signal.SIGINT, round(_KILLS.uniform(0.0, 0.6), 3)),
    ],
)
def test_embed_stopped_then_rerun_gives_the_same_embeddings(world, long_run, tmp_path, sig, after):
    ds, reference = long_run
    out = tmp_path / "emb"
    argv = ["embed", world["model"], ds, "-o", out, "--batch-size", "1", "-t", "1"]
    code, err = interrupt(argv, sig, after, started=out)
    stopped = check_interrupted(code, err, sig, "embed")
    if stopped:
        assert not out.exists(), f"{out} exists after embed was stopped"
        if sig != signal.SIGKILL:
            assert not leftovers(tmp_path), leftovers(tmp_path)
    assert main(["embed", str(world["model"]), str(ds), "-o", str(out), "-q", "--force"]) == 0
    assert_clean(tmp_path)
    got, want = open_embeddings(out), open_embeddings(reference)
    np.testing.assert_array_equal(got.mu, want.mu)
    assert got.ids() == want.ids()
    assert (out / "ids.txt").read_bytes() == (reference / "ids.txt").read_bytes()


def test_embeddings_do_not_depend_on_threads_or_batch_size(world, tmp_path):
    ds = write_profiles(tmp_path / "ds", random_profiles(3000, SMALL.layout, seed=6))
    runs = [(1, 1024), (2, 1024), (2, 97)]
    for i, (threads, batch) in enumerate(runs):
        embed_profiles(
            world["model"], ds, tmp_path / f"e{i}", threads=threads, batch_size=batch, device="cpu"
        )
    first = (tmp_path / "e0" / "embeddings.npy").read_bytes()
    for i in range(1, len(runs)):
        assert (tmp_path / f"e{i}" / "embeddings.npy").read_bytes() == first, runs[i]


def test_model_card_records_the_training_data_absolute(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    card = {"training_data": {"path": "data/train.kmv", "n_rows": 3, "ids_sha256": "ab"}}
    save_model(small_encoder(), tmp_path / "m", card=card)
    saved = json.loads((tmp_path / "m" / "card.json").read_text())
    assert saved["training_data"]["path"] == str(tmp_path / "data" / "train.kmv")
