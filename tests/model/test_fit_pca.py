"""PCA of the CLR: the out-of-core fit against its in-memory twin, the model folder, the
projection as an embedding backend, and the baselines of evaluate that share the fit."""

from __future__ import annotations

import json
import tracemalloc

import numpy as np
import pytest
from embed_factory import SMALL, random_profiles, write_profiles
from sklearn.decomposition import PCA

from kmervae.errors import InputError, KmervaeError
from kmervae.evaluate.runner import Source, run_fidelity
from kmervae.io.dataset import open_dataset
from kmervae.io.embeddings import open_embeddings
from kmervae.model.data import sample_rows
from kmervae.model.embed import embed_npy_stream, embed_profiles, load_encoder
from kmervae.model.pca import PCAProjection, decompose_clr, fix_signs
from kmervae.model.pca_folder import PCAEncoder, fit_pca_model
from kmervae.transform import clr

LAYOUT = SMALL.layout  # 4, 3, 2, 1-mers: 180 features


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("pca")
    x = random_profiles(400, LAYOUT, seed=11)
    test = random_profiles(150, LAYOUT, seed=12)
    ds = write_profiles(tmp / "ds", x)
    held = write_profiles(tmp / "test", test, ids=[f"t{i}" for i in range(len(test))])
    return {"tmp": tmp, "x": x, "ds": ds, "test_x": test, "test": held}


def twin(x: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The in-memory twin: mean, eigenvalues (descending) and sign-fixed eigenvectors of
    np.cov of the CLR of the whole matrix."""
    y = clr(x, LAYOUT).astype(np.float64)
    values, vectors = np.linalg.eigh(np.cov(y, rowvar=False))
    order = np.argsort(values)[::-1]
    return y.mean(axis=0), values[order], fix_signs(vectors[:, order])


@pytest.mark.parametrize("block_rows", [1, 7, 64, 4096])
def test_out_of_core_fit_equals_the_in_memory_twin(data, block_rows):
    ds = open_dataset(data["ds"])
    fit = decompose_clr(ds, np.arange(ds.n_rows), LAYOUT.ks, block_rows=block_rows)
    mean, values, vectors = twin(data["x"])
    assert fit.n_rows == ds.n_rows and fit.ks == LAYOUT.ks
    np.testing.assert_allclose(fit.mean, mean, atol=1e-6)
    np.testing.assert_allclose(fit.variances, np.maximum(values, 0), atol=1e-6)
    # the axes with distinct variances (the last, CLR-null directions share variance 0)
    distinct = 150
    np.testing.assert_allclose(fit.axes[:, :distinct], vectors[:, :distinct], atol=1e-6)
    # and scikit-learn's PCA, with the same sign convention
    sk = PCA(n_components=10, svd_solver="full").fit(clr(data["x"], LAYOUT).astype(np.float64))
    projection = PCAProjection.from_decomposition(fit, 10)
    np.testing.assert_allclose(projection.explained_variance, sk.explained_variance_, atol=1e-6)
    np.testing.assert_allclose(
        projection.explained_variance_ratio, sk.explained_variance_ratio_, atol=1e-6
    )
    np.testing.assert_allclose(projection.components, fix_signs(sk.components_.T), atol=1e-6)


def test_memory_does_not_grow_with_the_rows(tmp_path):
    """With small blocks the fit holds O(F²) and one block, not the rows."""
    peaks = {}
    for n in (200, 3000):
        ds = open_dataset(write_profiles(tmp_path / f"ds{n}", random_profiles(n, LAYOUT, n)))
        tracemalloc.start()
        decompose_clr(ds, np.arange(n), LAYOUT.ks, block_rows=16)
        peaks[n] = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    whole = 3000 * LAYOUT.n_features * 8  # the float64 CLR of every row: 4.3 MB
    assert peaks[3000] < 1.2 * peaks[200] and peaks[3000] < whole, peaks


def test_sign_convention(data):
    ds = open_dataset(data["ds"])
    fit = decompose_clr(ds, np.arange(ds.n_rows), LAYOUT.ks)
    axes = fit.axes
    largest = np.argmax(np.abs(axes), axis=0)
    assert (axes[largest, np.arange(axes.shape[1])] > 0).all()
    np.testing.assert_array_equal(fix_signs(-axes), axes)
    np.testing.assert_array_equal(
        fix_signs(np.array([[1.0, -2.0], [-3.0, 2.0]])), [[-1, 2], [3, -2]]
    )


def test_the_model_folder_and_its_card(data):
    out = data["tmp"] / "pca8"
    summary = fit_pca_model(data["ds"], out, 8, provenance={"command": ["test"]})
    assert sorted(p.name for p in out.iterdir()) == [
        "README.md",
        "card.json",
        "config.json",
        "pca.npz",
    ]
    config = json.loads((out / "config.json").read_text())
    assert config["format"] == "kmervae-model" and config["kind"] == "pca"
    assert config["model"] == {"kind": "pca", "ks": [4, 3, 2, 1], "latent": 8}
    card = json.loads((out / "card.json").read_text())
    assert card["kind"] == "pca" and card["components"] == 8 and card["ks"] == [4, 3, 2, 1]
    assert card["rows_used"] == 400 and card["sample"] is None
    assert card["training_data"]["ids_sha256"] == open_dataset(data["ds"]).ids_text_sha256
    assert card["provenance"] == {"command": ["test"]}
    assert card["weights_sha256"] == summary.fingerprint
    assert len(card["explained_variance_ratio"]) == 8
    assert card["explained_variance_ratio_total"] == pytest.approx(summary.explained_variance_ratio)
    with np.load(out / "pca.npz") as arrays:
        assert arrays["components"].shape == (180, 8) and arrays["mean"].dtype == np.float64
    encoder = load_encoder(out, device="cpu")
    assert isinstance(encoder, PCAEncoder) and encoder.fingerprint == summary.fingerprint
    assert encoder.config.latent == 8 and encoder.config.ks == (4, 3, 2, 1)
    # a VAE loader refuses it in one line
    pytest.importorskip("torch")
    from kmervae.model.files import load_model

    with pytest.raises(InputError, match="a PCA model, not a VAE"):
        load_model(out)


def test_a_seeded_sample_is_reproducible(data):
    tmp = data["tmp"]
    a = fit_pca_model(data["ds"], tmp / "s1", 6, sample=100, seed=3)
    b = fit_pca_model(data["ds"], tmp / "s2", 6, sample=100, seed=3)
    c = fit_pca_model(data["ds"], tmp / "s3", 6, sample=100, seed=4)
    assert (tmp / "s1" / "pca.npz").read_bytes() == (tmp / "s2" / "pca.npz").read_bytes()
    assert a.fingerprint == b.fingerprint != c.fingerprint and a.rows_used == 100
    rows = sample_rows(np.arange(400), 100, 3)
    mean, _, vectors = twin(data["x"][rows])
    encoder = PCAEncoder(tmp / "s1")
    np.testing.assert_allclose(encoder.projection.mean, mean, atol=1e-6)
    np.testing.assert_allclose(encoder.projection.components, vectors[:, :6], atol=1e-6)
    assert json.loads((tmp / "s1" / "card.json").read_text())["sample"] == {"rows": 100, "seed": 3}


def test_embedding_is_the_projection(data):
    model = data["tmp"] / "emb_model"
    fit_pca_model(data["ds"], model, 5)
    out = data["tmp"] / "emb"
    summary = embed_profiles(model, data["test"], out, batch_size=33)
    assert summary.backend == "numpy" and summary.latent == 5
    mean, _, vectors = twin(data["x"])
    want = (clr(data["test_x"], LAYOUT).astype(np.float64) - mean) @ vectors[:, :5]
    emb = open_embeddings(out)
    np.testing.assert_allclose(emb.mu, want, atol=1e-4)
    assert emb.sigma is None
    assert emb.model_fingerprint == PCAEncoder(model).fingerprint
    assert emb.manifest["model"]["config"] == {"kind": "pca", "ks": [4, 3, 2, 1], "latent": 5}
    # pipe mode: the same rows
    import io

    source, sink = io.BytesIO(), io.BytesIO()
    np.save(source, data["test_x"])
    source.seek(0)
    embed_npy_stream(model, source, sink)
    sink.seek(0)
    np.testing.assert_allclose(np.load(sink), emb.mu, atol=1e-6)  # other blocks
    with pytest.raises(KmervaeError, match="has no sigma"):
        embed_profiles(model, data["test"], data["tmp"] / "sig", sigma=True)
    assert not (data["tmp"] / "sig").exists()
    with pytest.raises(KmervaeError, match="runs on the CPU"):
        load_encoder(model, device="cuda")


@pytest.mark.parametrize("sample", [None, 120])
def test_evaluate_gives_the_numbers_of_the_baseline_fitted_on_the_same_rows(data, sample):
    """A PCA model fitted on all rows (or a sample of them) scores as ``pca-N`` fitted on the
    same rows: ``fit_rows`` rows sampled with the same seed (all when there are fewer)."""
    model = data["tmp"] / f"eval_{sample}"
    seed = 5
    fit_pca_model(data["ds"], model, 6, sample=sample, seed=seed)
    common = {"pool_size": 150, "n_queries": 40, "k": 10, "n_bootstrap": 20}
    ours = run_fidelity(Source(str(model), seed=seed), data["test"], **common)
    fit_rows = sample or 100_000
    base = Source("pca-6", fit=str(data["ds"]), fit_rows=fit_rows, seed=seed)
    theirs = run_fidelity(base, data["test"], **common)
    assert ours["representation"]["kind"] == "model" and ours["representation"]["dim"] == 6
    for key in ("spearman", "pearson", "mean_clr_mse_top", "random", "pool", "queries"):
        assert ours[key] == theirs[key], key


def test_requests_that_do_not_fit_the_data(data, tmp_path):
    out = tmp_path / "m"
    for components, sample, match in (
        (181, None, "has 180 features; choose 1 to 180"),
        (0, None, "choose 1 to 180"),
        (5, 401, "has 400 rows; choose 2 to 400"),
        (5, 1, "choose 2 to 400"),
        (50, 40, "a fit on 40 rows has at most 39 components"),
    ):
        with pytest.raises(KmervaeError, match=match):
            fit_pca_model(data["ds"], out, components, sample=sample)
    assert list(tmp_path.iterdir()) == []


def test_a_broken_folder_is_one_line(data, tmp_path):
    model = tmp_path / "m"
    fit_pca_model(data["ds"], model, 4)
    (model / "pca.npz").write_bytes(b"not a zip")
    with pytest.raises(InputError, match="cannot read the PCA arrays"):
        PCAEncoder(model)
    fit_pca_model(data["ds"], model, 4, overwrite=True)
    config = json.loads((model / "config.json").read_text())
    config["model"]["latent"] = 5
    (model / "config.json").write_text(json.dumps(config))
    with pytest.raises(InputError, match=r"components has shape \(180, 4\)"):
        PCAEncoder(model)
