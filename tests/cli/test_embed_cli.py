"""``kmervae embed`` end to end: in-process, pipe mode, and in subprocesses."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from embed_factory import SMALL, direct_encode, npy_bytes, random_profiles, write_model
from embed_factory import write_profiles as write_dataset
from hostile import assert_refused

from kmervae.cli import main
from kmervae.io.embeddings import open_embeddings
from kmervae.kmers.layout import FeatureLayout

SRC = Path(__file__).resolve().parents[2] / "src"


def _hidden(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess:
    env = dict(os.environ, PYTHONPATH=str(SRC))
    return subprocess.run(
        [sys.executable, "-m", "kmervae", *args], input=stdin, capture_output=True, env=env
    )


@pytest.fixture
def setup(tmp_path):
    model, encoder = write_model(tmp_path / "model")
    x = random_profiles(30, SMALL.layout, seed=1)
    return model, encoder, x, write_dataset(tmp_path / "ds", x)


def test_embed_writes_store_log_and_provenance(tmp_path, setup, capsys):
    model, encoder, x, ds = setup
    out = tmp_path / "emb"
    argv = ["embed", str(model), str(ds), "-o", str(out), "--sigma", "--batch-size", "7", "-t", "1"]
    assert main(argv) == 0
    assert capsys.readouterr().out == ""
    emb = open_embeddings(out)
    np.testing.assert_allclose(emb.mu, direct_encode(encoder, x)[0], atol=1e-5, rtol=1e-5)
    assert emb.sigma is not None and emb.ids()[:2] == ["c0", "c1"]
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["provenance"]["command"][:2] == ["kmervae", "embed"]
    log = (out / "kmervae.log").read_text()
    assert "command: kmervae embed" in log
    assert manifest["model"]["fingerprint"] in log
    assert manifest["dataset"]["features_sha256"] in log
    assert "30 rows embedded" in log
    assert _hidden(tmp_path) == []
    # an existing output needs --force
    assert main(["embed", str(model), str(ds), "-o", str(out), "-q"]) == 1
    assert "already exists" in capsys.readouterr().err
    assert main(["embed", str(model), str(ds), "-o", str(out), "-q", "--force"]) == 0
    assert open_embeddings(out).sigma is None


def test_pipe_mode_in_process(tmp_path, setup, monkeypatch, capsys):
    model, encoder, x, _ = setup
    legacy = np.hstack([np.full((30, 1), 1234, np.float32), x])
    stdin = io.TextIOWrapper(io.BytesIO(npy_bytes(legacy)))
    stdout = io.TextIOWrapper(io.BytesIO())
    monkeypatch.setattr(sys, "stdin", stdin)
    monkeypatch.setattr(sys, "stdout", stdout)
    assert main(["embed", str(model), "-", "--batch-size", "8", "-q"]) == 0
    got = np.load(io.BytesIO(stdout.buffer.getvalue()))  # type: ignore[attr-defined]
    assert got.dtype == np.float32 and got.shape == (30, SMALL.latent)
    np.testing.assert_allclose(got, direct_encode(encoder, x)[0], atol=1e-5, rtol=1e-5)


def test_pipe_mode_subprocess_writes_only_the_array(setup):
    model, encoder, x, _ = setup
    result = _run("embed", str(model), "-", "-v", stdin=npy_bytes(x))
    assert result.returncode == 0, result.stderr.decode()
    got = np.load(io.BytesIO(result.stdout))
    np.testing.assert_allclose(got, direct_encode(encoder, x)[0], atol=1e-5, rtol=1e-5)
    assert b"rows embedded" in result.stderr  # logs go to stderr


def _one_line_error(capsys, code: int, *needles: str) -> None:
    assert code != 0
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert captured.out == ""
    assert err.count("\n") == 0, err
    assert err.startswith("kmervae embed: error: "), err
    for needle in needles:
        assert needle in err, err


def test_bad_inputs_are_one_line_each(tmp_path, setup, capsys):
    model, _, x, ds = setup
    out = tmp_path / "emb"
    four = FeatureLayout((4,))
    fours = write_dataset(tmp_path / "fours", random_profiles(4, four), layout=four)
    code = main(["embed", str(model), str(fours), "-o", str(out), "-q"])
    _one_line_error(capsys, code, "k-groups 4 ", "k-groups 4,3,2,1")
    bad = x.copy()
    bad[11, 3] = np.nan
    nan_ds = write_dataset(tmp_path / "nan", bad)
    code = main(["embed", str(model), str(nan_ds), "-o", str(out), "-q", "--batch-size", "4"])
    _one_line_error(capsys, code, "row 12 (id c11)", "NaN")
    empty = write_dataset(tmp_path / "empty", np.zeros((0, SMALL.n_features), np.float32))
    _one_line_error(capsys, main(["embed", str(model), str(empty), "-o", str(out)]), "no rows")
    code = main(["embed", str(ds), str(ds), "-o", str(out), "-q"])
    _one_line_error(capsys, code, "not a kmervae model")
    code = main(["embed", str(model), str(tmp_path / "missing"), "-o", str(out), "-q"])
    _one_line_error(capsys, code, "no such dataset")
    _one_line_error(capsys, main(["embed", str(model), str(ds), "-q"]), "-o/--output is required")
    code = main(["embed", str(model), "-", "-o", str(out), "-q"])
    _one_line_error(capsys, code, "drop -o")
    argv = ["embed", model, ds, "-o", out, "--batch-size", "0", "-q"]
    assert_refused(argv, capsys, "argument --batch-size", code=2)
    assert not out.exists() and _hidden(tmp_path) == []


def test_pipe_bad_input_subprocess(setup):
    model, *_ = setup
    result = _run("embed", str(model), "-", stdin=npy_bytes(np.zeros((2, 50), np.float32)))
    assert result.returncode == 1 and result.stdout == b""
    err = result.stderr.decode().strip()
    assert err.count("\n") == 0 and "50 columns do not fit the model" in err


def test_cli_start_up_does_not_import_torch():
    code = "import sys, kmervae.cli; sys.exit(int('torch' in sys.modules))"
    env = dict(os.environ, PYTHONPATH=str(SRC))
    assert subprocess.run([sys.executable, "-c", code], env=env).returncode == 0


def test_onnx_model_embeds_without_torch(tmp_path, setup):
    pytest.importorskip("onnxruntime")
    onnx_export = pytest.importorskip("kmervae.model.onnx_export")
    from kmervae.model.files import load_model

    model, encoder, x, ds = setup
    onnx_file = onnx_export.export_onnx(load_model(model), tmp_path / "enc.onnx").path
    out = tmp_path / "emb"
    code = (
        "import sys; from kmervae.cli import main; "
        f"rc = main(['embed', {str(onnx_file)!r}, {str(ds)!r}, '-o', {str(out)!r}, '-q']); "
        "sys.exit(rc or (3 if 'torch' in sys.modules else 0))"
    )
    env = dict(os.environ, PYTHONPATH=str(SRC))
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True)
    assert result.returncode == 0, result.stderr.decode()
    emb = open_embeddings(out)
    np.testing.assert_allclose(emb.mu, direct_encode(encoder, x)[0], atol=1e-5, rtol=1e-5)
    assert emb.manifest["model"]["backend"] == "onnxruntime"
