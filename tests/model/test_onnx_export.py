"""ONNX export of the encoder and the torch-free ONNX Runtime encoder."""

from __future__ import annotations

import json
import subprocess
import sys

import numpy as np
import onnx
import pytest
import torch
from keras_factory import randomised_encoder

from kmervae.errors import InputError, KmervaeError
from kmervae.model.config import VAEConfig
from kmervae.model.files import load_model, save_model
from kmervae.model.onnx_export import export_onnx, random_profiles
from kmervae.model.onnx_runtime import META_FINGERPRINT, META_FORMAT, OnnxEncoder
from kmervae.model.vae import VAE, Encoder

SMALL = VAEConfig(ks=(4, 3, 2, 1), hidden=(64, 32), latent=8)


@pytest.fixture
def model_folder(tmp_path):
    torch.manual_seed(0)
    vae = VAE(SMALL)
    randomised_encoder(vae.encoder, seed=4)
    return save_model(vae.eval(), tmp_path / "model")


@pytest.fixture
def exported(model_folder, tmp_path):
    return export_onnx(load_model(model_folder), tmp_path / "enc.onnx")


def _torch_encode(encoder: Encoder, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    with torch.no_grad():
        mu, logvar = encoder(torch.from_numpy(x))
    return mu.numpy(), logvar.numpy()


@pytest.mark.parametrize("n", [1, 37])
def test_onnx_runtime_matches_torch(model_folder, exported, n):
    model = load_model(model_folder)
    onnx_encoder = OnnxEncoder(exported.path, intra_op_num_threads=1)
    x = random_profiles(n, SMALL.layout, seed=n)
    mu, logvar = onnx_encoder.encode(x)
    assert mu.dtype == logvar.dtype == np.float32 and mu.shape == logvar.shape == (n, 8)
    want_mu, want_logvar = _torch_encode(model.encoder, x)
    np.testing.assert_allclose(mu, want_mu, atol=1e-5, rtol=0)
    np.testing.assert_allclose(logvar, want_logvar, atol=1e-5, rtol=0)
    assert exported.max_abs_diff is not None and exported.max_abs_diff < 1e-5


def test_metadata_and_dynamic_batch(model_folder, exported):
    model = load_model(model_folder)
    proto = onnx.load(str(exported.path))
    props = {p.key: p.value for p in proto.metadata_props}
    assert props[META_FORMAT] == "kmervae-onnx-encoder"
    assert props[META_FINGERPRINT] == model.fingerprint
    assert VAEConfig.from_json(json.loads(props["kmervae.model_config"])) == SMALL
    assert json.loads(props["kmervae.layout"])["n_features"] == 180
    assert [o.name for o in proto.graph.output] == ["mu", "logvar"]
    batch_dim = proto.graph.input[0].type.tensor_type.shape.dim[0]
    assert batch_dim.dim_param and not batch_dim.dim_value
    assert exported.exporter == "torchscript" and exported.opset == 17

    onnx_encoder = OnnxEncoder(exported.path)
    assert onnx_encoder.config == SMALL
    assert onnx_encoder.fingerprint == model.fingerprint
    assert (onnx_encoder.n_features, onnx_encoder.latent) == (180, 8)
    empty_mu, empty_logvar = onnx_encoder.encode(np.zeros((0, 180), np.float32))
    assert empty_mu.shape == empty_logvar.shape == (0, 8)


def test_export_is_atomic_and_refuses_overwrite(model_folder, exported, tmp_path):
    model = load_model(model_folder)
    with pytest.raises(KmervaeError, match="already exists"):
        export_onnx(model, exported.path)
    export_onnx(model, exported.path, overwrite=True, verify=False)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["enc.onnx", "model"]


def test_onnx_encoder_rejects_bad_files_and_inputs(exported, tmp_path):
    junk = tmp_path / "junk.onnx"
    junk.write_bytes(b"not a protobuf at all")
    with pytest.raises(InputError, match="not a readable ONNX model"):
        OnnxEncoder(junk)
    with pytest.raises(InputError, match="no such ONNX file"):
        OnnxEncoder(tmp_path / "missing.onnx")
    foreign = onnx.load(str(exported.path))
    del foreign.metadata_props[:]
    onnx.save(foreign, str(tmp_path / "foreign.onnx"))
    with pytest.raises(InputError, match="not a kmervae ONNX encoder"):
        OnnxEncoder(tmp_path / "foreign.onnx")
    encoder = OnnxEncoder(exported.path)
    with pytest.raises(InputError, match="n x 180 features"):
        encoder.encode(np.zeros((3, 2772), np.float32))
    with pytest.raises(InputError, match="n x 180 features"):
        encoder.encode(np.zeros(180, np.float32))


def test_onnx_encoder_does_not_import_torch(exported):
    code = (
        "import sys; import kmervae.model.onnx_runtime as m; "
        f"e = m.OnnxEncoder({str(exported.path)!r}); "
        "import numpy as np; mu, lv = e.encode(np.full((2, e.n_features), 0.1, np.float32)); "
        "assert mu.shape == (2, e.latent); "
        "assert 'torch' not in sys.modules, 'torch was imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)
    code = "import sys, kmervae.model.config; assert 'torch' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, timeout=120)


def test_torch_export_exporter_also_works(tmp_path):
    """The fallback used when the legacy TorchScript exporter is gone."""
    torch.manual_seed(3)
    encoder = randomised_encoder(Encoder(SMALL))
    with pytest.raises(KmervaeError, match="opset 17 was asked for but the dynamo exporter"):
        export_onnx(encoder, tmp_path / "dynamo.onnx", exporter="dynamo")  # it starts at 18
    assert not (tmp_path / "dynamo.onnx").exists()
    result = export_onnx(encoder, tmp_path / "dynamo.onnx", exporter="dynamo", opset=18)
    assert result.exporter == "dynamo" and result.opset == 18
    x = random_profiles(37, SMALL.layout, seed=2)
    mu, logvar = OnnxEncoder(result.path).encode(x)
    want_mu, want_logvar = _torch_encode(encoder, x)
    np.testing.assert_allclose(mu, want_mu, atol=1e-5, rtol=0)
    np.testing.assert_allclose(logvar, want_logvar, atol=1e-5, rtol=0)
