"""Representations (model, CLR, PCA), labels files and held-out rows."""

from __future__ import annotations

import json

import numpy as np
import pytest
from embed_factory import SMALL, direct_encode, random_profiles, write_model, write_profiles

from kmervae.errors import InputError
from kmervae.evaluate.holdout import held_out_rows
from kmervae.evaluate.labels import align_labels, read_clustering, read_labels
from kmervae.evaluate.representations import (
    CLRBaseline,
    ModelRepresentation,
    is_baseline,
    model_path,
    open_representation,
    represent_rows,
)
from kmervae.io.dataset import open_dataset
from kmervae.kmers.layout import FeatureLayout
from kmervae.model.data import random_split, sample_rows
from kmervae.transform import clr

LAYOUT = SMALL.layout  # 4, 3, 2, 1-mers


@pytest.fixture
def dataset(tmp_path):
    x = random_profiles(300, LAYOUT, seed=2)
    return x, open_dataset(write_profiles(tmp_path / "ds", x))


def test_model_and_clr_representations(tmp_path, dataset):
    x, ds = dataset
    model_path, encoder = write_model(tmp_path / "model")
    rep = open_representation(str(model_path), ds.layout)
    assert isinstance(rep, ModelRepresentation) and rep.dim == SMALL.latent
    rows = np.array([0, 5, 9, 200])
    got = represent_rows(rep, ds, rows, block_rows=3)
    np.testing.assert_allclose(got, direct_encode(encoder, x[rows])[0], atol=1e-5, rtol=1e-5)
    tetra = open_representation("tetra", ds.layout)
    cols = LAYOUT.subset_columns((4,))
    np.testing.assert_allclose(
        represent_rows(tetra, ds, rows), clr(x[rows][:, cols], FeatureLayout((4,))), atol=1e-6
    )
    full = open_representation("clr", ds.layout)
    assert full.dim == LAYOUT.n_features and full.name == "clr"
    assert open_representation("clr3,2", ds.layout).ks == (3, 2)


def naive_w2(mu1, sigma1, mu2, sigma2):
    """2-Wasserstein distance between N(mu1, diag sigma1²) and N(mu2, diag sigma2²) from the
    general formula W2² = |mu1 - mu2|² + tr(S1 + S2 - 2 (S2^½ S1 S2^½)^½)."""
    s1, s2 = np.diag(sigma1**2), np.diag(sigma2**2)
    root2 = np.diag(sigma2)
    cross = root2 @ s1 @ root2
    values, vectors = np.linalg.eigh(cross)
    cross_root = vectors @ np.diag(np.sqrt(np.clip(values, 0, None))) @ vectors.T
    return float(np.sqrt(np.sum((mu1 - mu2) ** 2) + np.trace(s1 + s2 - 2 * cross_root)))


def test_w2_representation_gives_wasserstein_distances(tmp_path, dataset):
    x, ds = dataset
    path, encoder = write_model(tmp_path / "model")
    rep = open_representation(f"w2:{path}", ds.layout)
    assert isinstance(rep, ModelRepresentation) and rep.w2 and rep.dim == 2 * SMALL.latent
    assert rep.name.endswith("(w2)") and rep.describe()["distance"].startswith("w2")
    rows = np.array([1, 7, 30, 99])
    got = represent_rows(rep, ds, rows)
    mu, logvar = direct_encode(encoder, x[rows])
    sigma = np.exp(0.5 * logvar)
    for i in range(len(rows)):
        for j in range(i + 1, len(rows)):
            want = naive_w2(mu[i], sigma[i], mu[j], sigma[j])
            assert np.linalg.norm(got[i] - got[j]) == pytest.approx(want, rel=1e-4, abs=1e-5)
    assert model_path(f"w2:{path}") == str(path) and model_path("pca-3") == "pca-3"
    with pytest.raises(InputError, match="neither a model path"):
        open_representation("w2:no/such/model", ds.layout)


def test_pca_matches_svd_of_the_clr(dataset):
    x, ds = dataset
    pca = open_representation("pca-5", ds.layout, fit_dataset=ds, fit_max_rows=10_000)
    target = clr(x, LAYOUT).astype(np.float64)
    centred = target - target.mean(axis=0)
    _, s, vt = np.linalg.svd(centred, full_matrices=False)
    got = represent_rows(pca, ds, np.arange(ds.n_rows), block_rows=64)
    want = centred @ vt[:5].T
    # components are defined up to sign
    signs = np.sign(np.sum(got * want, axis=0))
    np.testing.assert_allclose(got * signs, want, atol=2e-3)
    variance = s**2
    assert pca.fit_info["explained_variance"] == pytest.approx(
        variance[:5].sum() / variance.sum(), rel=1e-4
    )
    # a seeded sample when the fit set is larger than allowed
    small = open_representation("pca-5", ds.layout, fit_dataset=ds, fit_max_rows=100, seed=1)
    assert small.fit_info["rows"] == 100


def test_bad_specs_and_layout_mismatch(tmp_path, dataset):
    _, ds = dataset
    assert is_baseline("PCA-384") and is_baseline("tetra") and not is_baseline("run1/model")
    with pytest.raises(InputError, match="neither a model path nor a baseline"):
        open_representation("pca384", ds.layout)
    with pytest.raises(InputError, match="must be fitted"):
        open_representation("pca-3", ds.layout)
    with pytest.raises(InputError, match="k-groups must be distinct"):
        open_representation("clr4,4", ds.layout)
    six = CLRBaseline((6, 5))
    with pytest.raises(InputError, match="do not include"):
        represent_rows(six, ds, np.arange(3))
    big = SMALL.replace(ks=(5, 4, 3, 2, 1))
    model_path, _ = write_model(tmp_path / "five", big)
    rep = open_representation(str(model_path), ds.layout)
    with pytest.raises(InputError, match=r"feature layouts do not match"):
        represent_rows(rep, ds, np.arange(3))


def test_labels_missing_and_extra_ids(tmp_path, caplog):
    path = tmp_path / "labels.tsv"
    path.write_text("id\tgenome\tspecies\na\tg1\ts1\nb\tg2\tNA\nzz\tg3\ts3\n")
    table = read_labels(path)
    aligned = align_labels(table, ["a", "b", "c"])
    assert aligned.codes.tolist() == [[0, 0], [1, -1], [-1, -1]]
    assert aligned.report() == {
        "rows_without_labels": 1,
        "label_ids_not_in_dataset": 1,
        "missing_per_rank": {"genome": 1, "species": 2},
    }
    assert "1 of 3 dataset ids have no line" in caplog.text
    with pytest.raises(InputError, match="none of the 2 dataset ids has a label"):
        align_labels(table, ["x", "y"])
    with pytest.raises(InputError, match="no column for rank"):
        read_labels(path, ["genus"])
    (tmp_path / "dup.tsv").write_text("id\tgenome\na\tg\na\th\n")
    with pytest.raises(InputError, match="repeats"):
        read_labels(tmp_path / "dup.tsv")
    (tmp_path / "cl.tsv").write_text("id\tcluster\na\t1\nb\t2\n")
    assert read_clustering(tmp_path / "cl.tsv") == {"a": "1", "b": "2"}


def test_held_out_rows_follow_the_training_run(tmp_path, dataset):
    _, ds = dataset
    run = tmp_path / "run1"
    (run / "model").mkdir(parents=True)
    info = {
        "dataset": {"n_rows": ds.n_rows, "ids_sha256": ds.manifest["ids_sha256"]},
        "split": {"seed": 7, "val_fraction": 0.2},
    }
    (run / "run.json").write_text(json.dumps(info))
    held = held_out_rows(ds, model_path=run / "model")
    np.testing.assert_array_equal(held.rows, random_split(ds.n_rows, 0.2, 7).validation)
    assert "validation part of run" in held.source
    assert len(held_out_rows(ds).rows) == ds.n_rows
    info["dataset"]["validation"] = {"path": "elsewhere"}
    (run / "run.json").write_text(json.dumps(info))
    with pytest.raises(InputError, match="none of its rows is held out"):
        held_out_rows(ds, run_dir=run)
    picked = sample_rows(np.arange(100), 10, seed=1)
    assert len(picked) == 10 and np.all(np.diff(picked) > 0)
