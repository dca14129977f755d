"""embed_profiles / embed_npy_stream against a direct encoder call, and the embedding store."""

from __future__ import annotations

import io
import json
import sys
import types
from pathlib import Path

import numpy as np
import pytest
import torch
from embed_factory import (
    SMALL,
    direct_encode,
    npy_bytes,
    random_profiles,
    small_encoder,
    write_model,
    write_profiles,
)

from kmervae.errors import InputError, KmervaeError
from kmervae.io.embeddings import EmbeddingsWriter, open_embeddings
from kmervae.kmers.layout import FEATURE_LAYOUT, FeatureLayout
from kmervae.model.config import VAEConfig
from kmervae.model.embed import TorchEncoder, embed_npy_stream, embed_profiles, load_encoder
from kmervae.model.fused import fused_cpu_forward
from kmervae.provenance import file_sha256


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture
def model(tmp_path):
    return write_model(tmp_path / "model")


@pytest.mark.parametrize("batch_size", [1, 7, 50, 4096])
def test_native_matches_encoder_and_carries_columns(tmp_path, model, batch_size):
    path, encoder = model
    x = random_profiles(50, SMALL.layout, seed=1)
    ds = write_profiles(tmp_path / "ds", x)
    out = tmp_path / "emb"
    seen = []
    summary = embed_profiles(
        path, ds, out, batch_size=batch_size, threads=1, device="cpu", sigma=True,
        progress=seen.append, provenance={"command": ["test"]},
    )  # fmt: skip
    assert summary.n_rows == 50 and summary.output == out and sum(seen) == 50
    emb = open_embeddings(out)
    want_mu, want_logvar = direct_encode(encoder, x)
    assert emb.mu.dtype == np.float32 and emb.mu.shape == (50, SMALL.latent)
    np.testing.assert_allclose(emb.mu, want_mu, atol=1e-5, rtol=1e-5)
    assert emb.sigma is not None
    np.testing.assert_allclose(emb.sigma, np.exp(0.5 * want_logvar), rtol=1e-4)
    assert emb.ids() == [f"c{i}" for i in range(50)]
    emb.verify_ids()
    np.testing.assert_array_equal(emb.lengths(), 1000 + 7 * np.arange(50))
    np.testing.assert_array_equal(emb.column("gc"), np.arange(50, dtype=np.float32) / 1000)
    np.testing.assert_array_equal(emb.column("sources"), np.arange(50) % 2)
    manifest = emb.manifest
    assert manifest["model"]["fingerprint"] == file_sha256(path / "model.safetensors")
    assert manifest["model"]["backend"] == "torch"
    assert manifest["model"]["config"]["latent"] == SMALL.latent
    source = json.loads((ds / "manifest.json").read_text())
    assert manifest["dataset"]["ids_sha256"] == source["ids_sha256"] == manifest["ids_sha256"]
    assert manifest["dataset"]["features_sha256"] == file_sha256(ds / "features.npy")
    assert summary.input_sha256 == manifest["dataset"]["features_sha256"]
    assert manifest["provenance"] == {"command": ["test"]}
    assert _leftovers(tmp_path) == []


def test_float16_dataset(tmp_path, model):
    path, encoder = model
    x = random_profiles(30, SMALL.layout, seed=2)
    ds = write_profiles(tmp_path / "half", x, dtype="float16")
    embed_profiles(path, ds, tmp_path / "emb", batch_size=8, threads=1, device="cpu")
    want, _ = direct_encode(encoder, x.astype(np.float16).astype(np.float32))
    np.testing.assert_allclose(open_embeddings(tmp_path / "emb").mu, want, atol=1e-5, rtol=1e-5)


def test_legacy_dataset(tmp_path):
    config = VAEConfig(ks=(4,), hidden=(16,), latent=6)  # the legacy formats know k=4 alone
    path, encoder = write_model(tmp_path / "m", config)
    x = random_profiles(25, config.layout, seed=3)
    npy = write_profiles(tmp_path / "old", x, layout=config.layout, fmt="legacy")
    embed_profiles(path, npy, tmp_path / "emb", batch_size=10, threads=1, device="cpu")
    emb = open_embeddings(tmp_path / "emb")
    np.testing.assert_allclose(emb.mu, direct_encode(encoder, x)[0], atol=1e-5, rtol=1e-5)
    assert emb.columns == ("lengths",) and emb.sigma is None
    np.testing.assert_array_equal(emb.lengths(), 1000 + 7 * np.arange(25))
    assert emb.manifest["dataset"]["features_sha256"] == file_sha256(npy)
    assert emb.ids() == [f"c{i}" for i in range(25)]


@pytest.mark.parametrize("ks", [(4, 3, 2, 1), (2, 4)])
def test_model_uses_a_subset_of_the_dataset_groups(tmp_path, ks):
    config = VAEConfig(ks=ks, hidden=(16,), latent=4)
    path, encoder = write_model(tmp_path / "m", config)
    x = random_profiles(20, FEATURE_LAYOUT, seed=4)
    ds = write_profiles(tmp_path / "full", x, layout=FEATURE_LAYOUT)
    embed_profiles(path, ds, tmp_path / "emb", batch_size=6, threads=1, device="cpu")
    want, _ = direct_encode(encoder, x[:, FEATURE_LAYOUT.subset_columns(ks)])
    np.testing.assert_allclose(open_embeddings(tmp_path / "emb").mu, want, atol=1e-5, rtol=1e-5)


def test_missing_kgroups_is_one_clear_error(tmp_path, model):
    path, _ = model
    layout = FeatureLayout((4,))
    ds = write_profiles(tmp_path / "four", random_profiles(5, layout), layout=layout)
    with pytest.raises(InputError, match=r"k-groups 4 .* needs k-groups 4,3,2,1"):
        embed_profiles(path, ds, tmp_path / "emb", device="cpu")
    assert not (tmp_path / "emb").exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_row_names_its_id(tmp_path, model, bad):
    path, _ = model
    x = random_profiles(40, SMALL.layout, seed=5)
    x[23, 17] = bad
    ds = write_profiles(tmp_path / "ds", x)
    with pytest.raises(InputError, match=r"row 24 \(id c23\) has NaN or infinite"):
        embed_profiles(path, ds, tmp_path / "emb", batch_size=8, threads=1, device="cpu")
    assert not (tmp_path / "emb").exists() and _leftovers(tmp_path) == []


def test_negative_features_are_named(tmp_path, model):
    path, _ = model
    x = random_profiles(10, SMALL.layout, seed=6)
    x[4] = np.log(x[4] + 0.01)  # CLR-like values, not frequencies
    ds = write_profiles(tmp_path / "ds", x)
    with pytest.raises(InputError, match=r"id c4\) has negative values"):
        embed_profiles(path, ds, tmp_path / "emb", threads=1, device="cpu")
    assert not (tmp_path / "emb").exists()


def test_empty_dataset(tmp_path, model):
    path, _ = model
    ds = write_profiles(tmp_path / "empty", np.zeros((0, SMALL.n_features), np.float32))
    with pytest.raises(InputError, match="no rows"):
        embed_profiles(path, ds, tmp_path / "emb", device="cpu")
    assert not (tmp_path / "emb").exists()


def test_not_a_model(tmp_path):
    ds = write_profiles(tmp_path / "ds", random_profiles(3, SMALL.layout))
    with pytest.raises(InputError, match="not a kmervae model"):
        embed_profiles(tmp_path / "ds", ds, tmp_path / "emb", device="cpu")
    with pytest.raises(InputError, match="no such model"):
        embed_profiles(tmp_path / "nothing", ds, tmp_path / "emb", device="cpu")
    with pytest.raises(KmervaeError, match="unknown device"):
        load_encoder(tmp_path / "ds", device="tpu")
    if not torch.cuda.is_available():
        with pytest.raises(KmervaeError, match="no CUDA GPU"):
            embed_profiles(write_model(tmp_path / "m")[0], ds, tmp_path / "emb", device="cuda")
    assert not (tmp_path / "emb").exists()


def test_training_checkpoint_is_a_model(tmp_path):
    from kmervae.model.checkpoint import save_checkpoint
    from kmervae.model.vae import VAE

    torch.manual_seed(1)
    vae = VAE(SMALL).eval()
    pt = tmp_path / "last.pt"
    save_checkpoint(
        pt, {"model_config": SMALL.to_json(), "model_state": vae.state_dict(), "epoch": 3}
    )
    x = random_profiles(9, SMALL.layout, seed=14)
    ds = write_profiles(tmp_path / "ds", x)
    embed_profiles(pt, ds, tmp_path / "emb", threads=1, device="cpu")
    emb = open_embeddings(tmp_path / "emb")
    np.testing.assert_allclose(emb.mu, direct_encode(vae.encoder, x)[0], atol=1e-5, rtol=1e-5)
    assert emb.model_fingerprint == file_sha256(pt)


def test_loaded_model_and_dataset_objects(tmp_path, model):
    from kmervae.io.dataset import open_dataset
    from kmervae.model.files import load_model

    path, encoder = model
    x = random_profiles(11, SMALL.layout, seed=15)
    ds = open_dataset(write_profiles(tmp_path / "ds", x))
    summary = embed_profiles(load_model(path), ds, tmp_path / "emb", threads=1, device="cpu")
    assert summary.backend == "torch" and summary.rows_per_second > 0
    emb = open_embeddings(tmp_path / "emb")
    np.testing.assert_allclose(emb.mu, direct_encode(encoder, x)[0], atol=1e-5, rtol=1e-5)
    assert emb.manifest["model"]["path"] == str(path.resolve())


def test_fortran_order_features_are_refused(tmp_path, model):
    path, _ = model
    ds = write_profiles(tmp_path / "ds", random_profiles(6, SMALL.layout))
    features = np.load(ds / "features.npy")
    np.save(ds / "features.npy", np.asfortranarray(features))
    with pytest.raises(InputError, match="Fortran"):
        embed_profiles(path, ds, tmp_path / "emb", device="cpu")


def test_existing_output_is_refused_before_work(tmp_path, model):
    path, _ = model
    ds = write_profiles(tmp_path / "ds", random_profiles(3, SMALL.layout))
    (tmp_path / "emb").mkdir()
    with pytest.raises(KmervaeError, match="already exists"):
        embed_profiles(path, ds, tmp_path / "emb", device="cpu")
    embed_profiles(path, ds, tmp_path / "emb", device="cpu", overwrite=True)
    assert open_embeddings(tmp_path / "emb").n_rows == 3


class _FailingEncoder:
    """Fails on its third block: the reader thread must stop and nothing may remain."""

    def __init__(self, encoder):
        self.inner = TorchEncoder(encoder, device="cpu", threads=1)
        self.config = self.inner.config
        self.fingerprint = "f" * 64
        self.calls = 0

    def encode(self, x):
        self.calls += 1
        if self.calls == 3:
            raise RuntimeError("boom")
        return self.inner.encode(x)


def test_encoder_failure_stops_the_reader_and_leaves_nothing(tmp_path):
    ds = write_profiles(tmp_path / "ds", random_profiles(200, SMALL.layout))
    with pytest.raises(RuntimeError, match="boom"):
        embed_profiles(_FailingEncoder(small_encoder()), ds, tmp_path / "emb", batch_size=2)
    assert not (tmp_path / "emb").exists() and _leftovers(tmp_path) == []


@pytest.mark.parametrize(
    "config",
    [
        VAEConfig(ks=(4, 3, 2, 1), hidden=(32, 16), latent=8),
        VAEConfig(ks=(4, 3, 2, 1), hidden=(24,), latent=5, dropout=0.1),
        VAEConfig(ks=(3, 1), hidden=(16, 8), latent=3, batchnorm=False),
    ],
)
def test_fused_cpu_forward_matches_the_module(config):
    encoder = small_encoder(config, seed=3)
    forward = fused_cpu_forward(encoder)
    if forward is None:
        pytest.skip("this torch has no oneDNN linear operator")
    x = torch.from_numpy(random_profiles(33, config.layout, seed=7))
    with torch.inference_mode():
        for got, want in zip(forward(x), encoder(x), strict=True):
            torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)


def test_fast_and_plain_torch_backends_agree():
    encoder = small_encoder()
    x = random_profiles(64, SMALL.layout, seed=8)
    fast = TorchEncoder(encoder, device="cpu", fast=True).encode(x)
    plain = TorchEncoder(encoder, device="cpu", fast=False).encode(x)
    for a, b in zip(fast, plain, strict=True):
        assert a.dtype == np.float32 and a.shape == (64, SMALL.latent)
        np.testing.assert_allclose(a, b, atol=1e-5, rtol=1e-5)


# -- the ONNX backend -----------------------------------------------------------------------


class _StandInOnnxEncoder:
    """The OnnxEncoder interface, computed with NumPy (mu = CLR(x) @ W, logvar = -mu)."""

    def __init__(self, path, *, intra_op_num_threads=0):
        self.path = Path(path)
        self.config = SMALL
        self.fingerprint = "0" * 64
        self.threads = intra_op_num_threads
        self.weights = np.random.default_rng(0).normal(size=(SMALL.n_features, SMALL.latent))

    def encode(self, x):
        assert x.dtype == np.float32 and x.flags.c_contiguous
        mu = (np.log(x + 0.01) @ self.weights).astype(np.float32)
        return mu, -mu

    def describe(self):
        return {"backend": "onnxruntime", "path": str(self.path), "fingerprint": self.fingerprint}


def test_onnx_path_uses_onnx_encoder_without_torch_model(tmp_path, monkeypatch):
    fake = types.ModuleType("kmervae.model.onnx_runtime")
    fake.OnnxEncoder = _StandInOnnxEncoder  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "kmervae.model.onnx_runtime", fake)
    onnx_file = tmp_path / "enc.onnx"
    onnx_file.write_bytes(b"stand-in")
    x = random_profiles(21, SMALL.layout, seed=9)
    ds = write_profiles(tmp_path / "ds", x)
    embed_profiles(onnx_file, ds, tmp_path / "emb", batch_size=4, threads=2, sigma=True)
    emb = open_embeddings(tmp_path / "emb")
    want = _StandInOnnxEncoder(onnx_file).encode(x)[0]
    np.testing.assert_allclose(emb.mu, want, rtol=1e-6)
    assert emb.sigma is not None
    np.testing.assert_allclose(emb.sigma, np.exp(-0.5 * want), rtol=1e-5)
    assert emb.manifest["model"]["backend"] == "onnxruntime"
    assert emb.manifest["model"]["path"] == str(onnx_file.resolve())
    with pytest.raises(KmervaeError, match="runs on the CPU"):
        load_encoder(onnx_file, device="cuda")


def test_real_onnx_encoder_matches_torch(tmp_path, model):
    pytest.importorskip("onnxruntime")
    onnx_export = pytest.importorskip("kmervae.model.onnx_export")
    from kmervae.model.files import load_model

    path, _ = model
    onnx_file = onnx_export.export_onnx(load_model(path), tmp_path / "enc.onnx").path
    x = random_profiles(40, SMALL.layout, seed=10)
    ds = write_profiles(tmp_path / "ds", x)
    embed_profiles(path, ds, tmp_path / "a", batch_size=16, threads=1, device="cpu")
    embed_profiles(onnx_file, ds, tmp_path / "b", batch_size=16, threads=1)
    a, b = open_embeddings(tmp_path / "a"), open_embeddings(tmp_path / "b")
    np.testing.assert_allclose(b.mu, a.mu, atol=1e-5, rtol=1e-5)
    assert a.model_fingerprint == b.model_fingerprint != ""
    assert b.manifest["model"]["backend"] == "onnxruntime"


# -- pipe mode ----------------------------------------------------------------------------


def _pipe(model_path, data: bytes, **kwargs) -> np.ndarray:
    sink = io.BytesIO()
    kwargs.setdefault("threads", 1)
    kwargs.setdefault("device", "cpu")
    embed_npy_stream(model_path, io.BytesIO(data), sink, **kwargs)
    return np.load(io.BytesIO(sink.getvalue()))


@pytest.mark.parametrize("batch_size", [1, 5, 1000])
def test_pipe_features_and_legacy_columns(model, batch_size):
    path, encoder = model
    x = random_profiles(17, SMALL.layout, seed=11)
    want, _ = direct_encode(encoder, x)
    got = _pipe(path, npy_bytes(x), batch_size=batch_size)
    assert got.dtype == np.float32 and got.shape == (17, SMALL.latent)
    np.testing.assert_allclose(got, want, atol=1e-5, rtol=1e-5)
    legacy = np.hstack([np.full((17, 1), 5000, np.float32), x])
    np.testing.assert_allclose(_pipe(path, npy_bytes(legacy)), want, atol=1e-5, rtol=1e-5)
    as64 = _pipe(path, npy_bytes(x.astype(np.float64)), batch_size=batch_size)
    np.testing.assert_allclose(as64, want, atol=1e-5, rtol=1e-5)


def test_pipe_reference_layout_for_a_subset_model(tmp_path):
    path, encoder = write_model(tmp_path / "m", VAEConfig(ks=(4, 3, 2, 1), hidden=(8,), latent=3))
    x = random_profiles(6, FEATURE_LAYOUT, seed=12)
    legacy = np.hstack([np.ones((6, 1), np.float32), x])
    want, _ = direct_encode(encoder, x[:, FEATURE_LAYOUT.subset_columns((4, 3, 2, 1))])
    np.testing.assert_allclose(_pipe(path, npy_bytes(legacy)), want, atol=1e-5, rtol=1e-5)


def test_pipe_bad_input(model):
    path, _ = model
    x = random_profiles(12, SMALL.layout, seed=13)
    with pytest.raises(InputError, match=r"not a readable \.npy"):
        _pipe(path, b"hello world, not an array")
    with pytest.raises(InputError, match=r"179 columns .* takes 180 features"):
        _pipe(path, npy_bytes(np.zeros((3, 179), np.float32)))
    with pytest.raises(InputError, match="no rows"):
        _pipe(path, npy_bytes(np.zeros((0, 180), np.float32)))
    with pytest.raises(InputError, match="2-D float"):
        _pipe(path, npy_bytes(np.zeros((3, 180), np.int32)))
    with pytest.raises(InputError, match="ended early"):
        _pipe(path, npy_bytes(x)[:-100], batch_size=4)
    bad = x.copy()
    bad[9, 0] = np.nan
    with pytest.raises(InputError, match="stdin: row 10 has NaN"):
        _pipe(path, npy_bytes(bad), batch_size=4)


# -- the store itself -----------------------------------------------------------------------


def test_store_checks_itself(tmp_path):
    with EmbeddingsWriter(tmp_path / "s", 3, columns=("lengths",)) as writer:
        writer.append(np.ones((2, 3), np.float32), lengths=np.array([5, 6]))
        writer.append_ids(["a", "b"])
        writer.close({"model": {"fingerprint": "abc"}})
    store = open_embeddings(tmp_path / "s")
    assert store.model_fingerprint == "abc" and store.ids() == ["a", "b"] and len(store) == 2
    with pytest.raises(InputError, match="no gc column"):
        store.column("gc")
    (tmp_path / "s" / "ids.txt").write_text("a\nb\nc\n")
    with pytest.raises(InputError, match="3 ids for 2 embedding rows"):
        open_embeddings(tmp_path / "s")
    (tmp_path / "s" / "ids.txt").write_text("a\nb\n")
    np.save(tmp_path / "s" / "embeddings.npy", np.ones((2, 3), np.float64))
    with pytest.raises(InputError, match="dtype float64"):
        open_embeddings(tmp_path / "s")
    with pytest.raises(InputError, match="not an embedding store"):
        open_embeddings(tmp_path)


def test_writer_refuses_mismatched_ids_and_discards(tmp_path):
    writer = EmbeddingsWriter(tmp_path / "s", 2)
    writer.append(np.zeros((2, 2), np.float32), lengths=np.array([1, 2]))
    writer.append_ids(["only-one"])
    with pytest.raises(KmervaeError, match="1 ids for 2"):
        writer.close()
    writer.abort()
    assert not (tmp_path / "s").exists() and _leftovers(tmp_path) == []
