"""Importing Keras 3 encoders without Keras: the real research file and synthetic ones."""

from __future__ import annotations

import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest
import torch
from keras_factory import randomised_encoder, write_keras_encoder

from kmervae.errors import InputError
from kmervae.model.config import VAEConfig
from kmervae.model.files import load_model, save_model
from kmervae.model.keras_import import import_keras_encoder, infer_ks
from kmervae.model.onnx_export import random_profiles
from kmervae.model.vae import Encoder

# tests/model/this.py -> parents[3] is the folder holding this checkout and shared/
LEGACY_KERAS = Path(
    os.environ.get(
        "KMERVAE_LEGACY_KERAS",
        Path(__file__).resolve().parents[3] / "shared" / "data" / "legacy_keras",
    )
)
SMALL = VAEConfig(ks=(4, 3, 2, 1), hidden=(64, 32), latent=8)


@pytest.fixture
def legacy_keras() -> Path:
    if not (LEGACY_KERAS / "vae_encoder.keras").is_file():
        pytest.skip("the shared legacy Keras fixture is not beside this checkout")
    return LEGACY_KERAS


def _encode(encoder: Encoder, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        mu, logvar = encoder(torch.from_numpy(x))
    return mu.numpy(), logvar.numpy()


def test_real_research_encoder_reproduces_keras(legacy_keras, tmp_path):
    imported = import_keras_encoder(legacy_keras / "vae_encoder.keras")
    config = imported.config
    assert config.ks == (6, 5, 4, 3, 2, 1) and config.n_features == 2772
    assert (config.hidden, config.latent, config.batchnorm) == ((1024, 512), 384, True)
    assert (config.leaky_slope, config.logvar_min, config.logvar_max) == (0.2, -20.0, 2.0)
    assert config.bn_eps == pytest.approx(1e-3) and config.bn_momentum == pytest.approx(0.01)
    rows = np.load(legacy_keras / "legacy_inputs.npy")
    want_mu = np.load(legacy_keras / "legacy_z_mean.npy")
    want_logvar = np.load(legacy_keras / "legacy_z_log_var.npy")
    mu, logvar = _encode(imported.encoder, np.ascontiguousarray(rows[:, 1:]))
    assert np.abs(mu - want_mu).max() <= 1e-4  # measured 2.8e-5
    assert np.abs(logvar - want_logvar).max() <= 1e-4  # measured 3.1e-5
    # through a model folder and back, identical
    save_model(imported.encoder, tmp_path / "model", card=imported.card)
    loaded = load_model(tmp_path / "model")
    assert loaded.decoder is None and loaded.config == config
    assert np.array_equal(_encode(loaded.encoder, rows[:, 1:].copy())[0], mu)
    provenance = loaded.card["provenance"]
    assert provenance["keras_version"] == "3.15.1"
    assert len(provenance["source_sha256"]) == 64 and "encoder only" in provenance["parts"]


@pytest.mark.parametrize(
    ("config", "options"),
    [
        (SMALL, {}),
        (SMALL, {"store_names": False}),  # group names by class only
        (SMALL, {"heads_first": "z_mean", "names": {"z_mean": "mu_head", "z_log_var": "lv"}}),
        (SMALL.replace(ks=(5, 4, 3, 2, 1), dropout=0.1, hidden=(16,)), {"sampling": False}),
        (SMALL.replace(ks=(3, 2, 1), batchnorm=False, leaky_slope=0.1), {}),
        (
            SMALL.replace(ks=(2, 1), bn_eps=1e-5, bn_momentum=0.1, hidden=(8, 8, 8)),
            {"names": {f"enc_dense{i}": f"hidden_{i}" for i in (1, 2, 3)}},
        ),
    ],
)
def test_synthetic_round_trip(tmp_path, config, options):
    torch.manual_seed(1)
    source = randomised_encoder(Encoder(config))
    path = write_keras_encoder(tmp_path / "enc.keras", source, **options)
    imported = import_keras_encoder(path)
    assert imported.config == config.replace(beta=imported.config.beta)
    x = random_profiles(25, config.layout, seed=3)
    for got, want in zip(_encode(imported.encoder, x), _encode(source, x), strict=True):
        np.testing.assert_allclose(got, want, atol=1e-6, rtol=0)


def test_without_clip_layer_logvar_is_unclipped(tmp_path):
    torch.manual_seed(2)
    source = randomised_encoder(Encoder(SMALL))
    path = write_keras_encoder(tmp_path / "enc.keras", source, clip=False)
    imported = import_keras_encoder(path)
    assert imported.config.logvar_min < -1e30 and imported.config.logvar_max > 1e30


def test_infer_ks_and_explicit_ks(tmp_path):
    assert infer_ks(2772) == (6, 5, 4, 3, 2, 1)
    assert infer_ks(692) == (5, 4, 3, 2, 1)
    assert infer_ks(180) == (4, 3, 2, 1)
    with pytest.raises(InputError, match=r"k-groups explicitly \(ks\)"):
        infer_ks(181)
    source = Encoder(SMALL).eval()
    path = write_keras_encoder(tmp_path / "enc.keras", source)
    # an order other than the standard one, of the same width, is given explicitly
    assert import_keras_encoder(path, ks=(1, 2, 3, 4)).config.ks == (1, 2, 3, 4)
    with pytest.raises(InputError, match="input width is 180"):
        import_keras_encoder(path, ks=(3, 2, 1))


def _rewrite(path: Path, member: str, change) -> None:
    with zipfile.ZipFile(path) as archive:
        members = {name: archive.read(name) for name in archive.namelist()}
    members[member] = change(members[member])
    with zipfile.ZipFile(path, "w") as archive:
        for name, data in members.items():
            archive.writestr(name, data)


def test_bad_files_give_one_line_errors(tmp_path):
    not_zip = tmp_path / "enc.keras"
    not_zip.write_text("hello")
    with pytest.raises(InputError, match="not a zip"):
        import_keras_encoder(not_zip)
    with pytest.raises(InputError, match="no such file"):
        import_keras_encoder(tmp_path / "missing.keras")
    no_weights = tmp_path / "no_weights.keras"
    with zipfile.ZipFile(no_weights, "w") as archive:
        archive.writestr("config.json", "{}")
    with pytest.raises(InputError, match=r"no model\.weights\.h5"):
        import_keras_encoder(no_weights)

    good = write_keras_encoder(tmp_path / "good.keras", Encoder(SMALL).eval())

    def relu_activation(data: bytes) -> bytes:
        graph = json.loads(data)
        graph["config"]["layers"][1]["config"]["activation"] = "relu"
        return json.dumps(graph).encode()

    _rewrite(good, "config.json", relu_activation)
    with pytest.raises(InputError, match=r"cannot map.*activation 'relu'") as info:
        import_keras_encoder(good)
    assert "\n" not in str(info.value)

    subclassed = write_keras_encoder(tmp_path / "sub.keras", Encoder(SMALL).eval())
    _rewrite(subclassed, "config.json", lambda _: b'{"class_name": "VAE", "config": {}}')
    with pytest.raises(InputError, match="without a layer list"):
        import_keras_encoder(subclassed)

    wrong_shape = write_keras_encoder(tmp_path / "shape.keras", Encoder(SMALL).eval())

    def wider(data: bytes) -> bytes:
        graph = json.loads(data)
        graph["config"]["layers"][1]["config"]["units"] = 65
        return json.dumps(graph).encode()

    _rewrite(wrong_shape, "config.json", wider)
    with pytest.raises(InputError, match="shape"):
        import_keras_encoder(wrong_shape)
