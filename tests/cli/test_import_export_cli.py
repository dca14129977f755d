"""``kmervae import-keras`` and ``kmervae export`` end to end, in-process."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch
from keras_factory import randomised_encoder, write_keras_encoder

from kmervae.cli import main
from kmervae.model.config import VAEConfig
from kmervae.model.files import load_model
from kmervae.model.onnx_export import random_profiles
from kmervae.model.onnx_runtime import OnnxEncoder
from kmervae.model.vae import Encoder

LEGACY_KERAS = Path(
    os.environ.get(
        "KMERVAE_LEGACY_KERAS",
        Path(__file__).resolve().parents[3] / "shared" / "data" / "legacy_keras",
    )
)
SMALL = VAEConfig(ks=(4, 3, 2, 1), hidden=(64, 32), latent=8)


def _hidden_leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_import_then_export_synthetic(tmp_path, capsys):
    torch.manual_seed(5)
    source = randomised_encoder(Encoder(SMALL))
    keras = write_keras_encoder(tmp_path / "vae_encoder_best.keras", source)
    model = tmp_path / "model"
    assert main(["import-keras", str(keras), "-o", str(model), "--name", "legacy run 7"]) == 0
    assert "imported" in capsys.readouterr().err
    config = json.loads((model / "config.json").read_text())
    assert config["parts"] == ["encoder"] and config["model"]["ks"] == [4, 3, 2, 1]
    card = json.loads((model / "card.json").read_text())
    assert card["name"] == "legacy run 7"
    assert card["provenance"]["command"][:2] == ["kmervae", "import-keras"]
    assert "keras_version: 3.15.1" in (model / "README.md").read_text()

    onnx_path = tmp_path / "enc.onnx"
    assert main(["export", str(model), "-o", str(onnx_path)]) == 0
    assert "ONNX Runtime matches PyTorch" in capsys.readouterr().err
    encoder = OnnxEncoder(onnx_path)
    assert encoder.fingerprint == load_model(model).fingerprint
    x = random_profiles(11, SMALL.layout, seed=9)
    with torch.no_grad():
        want_mu, want_logvar = source(torch.from_numpy(x))
    mu, logvar = encoder.encode(x)
    np.testing.assert_allclose(mu, want_mu.numpy(), atol=1e-5, rtol=0)
    np.testing.assert_allclose(logvar, want_logvar.numpy(), atol=1e-5, rtol=0)
    assert _hidden_leftovers(tmp_path) == []


def _one_error_line(capsys, command: str) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith(f"kmervae {command}: error: "), err
    return err[0]


def test_user_errors_are_one_line(tmp_path, capsys):
    not_zip = tmp_path / "enc.keras"
    not_zip.write_text("not a zip")
    assert main(["import-keras", str(not_zip), "-o", str(tmp_path / "m")]) == 1
    assert "not a zip" in _one_error_line(capsys, "import-keras")
    assert not (tmp_path / "m").exists()

    keras = write_keras_encoder(tmp_path / "good.keras", Encoder(SMALL).eval())
    (tmp_path / "m").mkdir()
    assert main(["import-keras", str(keras), "-o", str(tmp_path / "m"), "-q"]) == 1
    assert "already exists" in _one_error_line(capsys, "import-keras")
    assert main(["import-keras", str(keras), "-o", str(tmp_path / "m"), "-q", "--force"]) == 0
    assert main(["import-keras", str(keras), "-o", str(tmp_path / "m2"), "--ks", "6,5"]) == 1
    assert "input width is 180" in _one_error_line(capsys, "import-keras")

    assert main(["export", str(tmp_path / "nothing"), "-o", str(tmp_path / "x.onnx")]) == 1
    assert "no such model, embedding store or index store" in _one_error_line(capsys, "export")
    out = tmp_path / "x.onnx"
    assert main(["export", str(tmp_path / "m"), "-o", str(out), "-q"]) == 0
    assert main(["export", str(tmp_path / "m"), "-o", str(out), "-q"]) == 1
    assert "already exists" in _one_error_line(capsys, "export")
    assert main(["export", str(tmp_path / "m"), "-o", str(out), "-q", "--force"]) == 0
    assert _hidden_leftovers(tmp_path) == []


def test_real_research_encoder_through_onnx(tmp_path):
    if not (LEGACY_KERAS / "vae_encoder.keras").is_file():
        pytest.skip("the shared legacy Keras fixture is not beside this checkout")
    model, onnx_path = tmp_path / "model", tmp_path / "enc.onnx"
    assert main(["import-keras", str(LEGACY_KERAS / "vae_encoder.keras"), "-o", str(model)]) == 0
    assert main(["export", str(model), "-o", str(onnx_path), "-q"]) == 0
    rows = np.load(LEGACY_KERAS / "legacy_inputs.npy")
    mu, logvar = OnnxEncoder(onnx_path).encode(rows[:, 1:])
    assert np.abs(mu - np.load(LEGACY_KERAS / "legacy_z_mean.npy")).max() <= 1e-4
    assert np.abs(logvar - np.load(LEGACY_KERAS / "legacy_z_log_var.npy")).max() <= 1e-4
