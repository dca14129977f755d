"""Length-noise views: the binomial-tree multinomial against NumPy's multinomial, the views,
the consistency term against a loop twin, and training with views."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
from test_train import clustered_dataset, quick

from kmervae.cli import main
from kmervae.errors import KmervaeError
from kmervae.kmers.layout import FeatureLayout
from kmervae.model.config import TrainConfig, VAEConfig
from kmervae.model.epoch import forward
from kmervae.model.train import RuntimeOptions, train_vae
from kmervae.model.vae import VAE
from kmervae.model.views import (
    LengthNoise,
    consistency_term,
    length_views,
    multinomial_counts,
    noisy_batch,
    sample_lengths,
)


def test_counts_sum_to_the_draws_and_stay_on_the_support():
    torch.manual_seed(0)
    p = torch.rand(50, 37)
    p[:, 5] = 0.0  # a category that can never be drawn
    p[3] = 0.0  # a row with no weight at all
    n = torch.randint(1, 5000, (50,)).float()
    counts = multinomial_counts(p, n)
    assert counts.shape == (50, 37)
    assert torch.all(counts >= 0) and torch.all(counts == counts.round())
    assert torch.all(counts[:, 5] == 0)
    assert torch.all(counts[3] == 0)
    others = torch.arange(50) != 3
    assert torch.equal(counts[others].sum(dim=1), n[others])


@pytest.mark.parametrize("width", [1, 2, 10, 136])
def test_the_tree_draws_what_numpy_multinomial_draws(width):
    """Mean and covariance of many draws agree with NumPy's multinomial (the naive twin) and
    with n p, n (diag(p) - p p^T)."""
    rng = np.random.default_rng(width)
    p = rng.dirichlet(np.full(width, 0.5))
    n, draws = 300, 20_000
    torch.manual_seed(1)
    ours = (
        multinomial_counts(
            torch.tensor(np.tile(p, (draws, 1)), dtype=torch.float32), torch.full((draws,), n)
        )
        .double()
        .numpy()
    )
    theirs = rng.multinomial(n, p, size=draws).astype(np.float64)
    expected_cov = n * (np.diag(p) - np.outer(p, p))
    for sample in (ours, theirs):
        se = np.sqrt(n * p * (1 - p) / draws)
        assert np.all(np.abs(sample.mean(axis=0) - n * p) <= 5 * se + 1e-9)
        common = n * p >= 5  # categories drawn often enough for a covariance
        if common.sum() > 1:
            cov = np.cov(sample[:, common], rowvar=False)
            want = expected_cov[np.ix_(common, common)]
            scale = np.sqrt(np.outer(np.diag(want), np.diag(want)))
            assert np.max(np.abs(cov - want) / scale) < 0.1
    # the two agree with each other category by category (a chi-square of the totals)
    if width > 1:
        a, b = ours.sum(axis=0), theirs.sum(axis=0)
        keep = (a + b) > 0
        chi2 = np.sum((a[keep] - b[keep]) ** 2 / (a[keep] + b[keep]))
        dof = keep.sum() - 1
        assert chi2 < dof + 6 * math.sqrt(2 * dof)


def test_no_rows_and_no_views():
    """A batch too small for any view (or an empty one) passes through."""
    empty = multinomial_counts(torch.zeros(0, 2080), torch.zeros(0))
    assert empty.shape == (0, 2080)
    layout = FeatureLayout((2, 1))
    x = torch.full((1, layout.n_features), 0.25)
    x[:, layout.group_slice(1)] = 0.5
    clean, seen, twins = noisy_batch(x, layout, LengthNoise(0.3, 100, 1000, 1.0))
    assert torch.equal(clean, x) and torch.equal(seen, x) and twins.numel() == 0


def test_lengths_are_log_uniform_in_the_range():
    torch.manual_seed(2)
    lengths = sample_lengths(40_000, 1000, 10_000, torch.device("cpu")).numpy()
    assert lengths.min() >= 1000 and lengths.max() <= 10_000
    assert np.all(lengths == np.round(lengths))
    # log-uniform: the median is the geometric mean, a quarter falls below 10**3.25
    assert np.median(lengths) == pytest.approx(math.sqrt(1000 * 10_000), rel=0.03)
    assert np.mean(lengths < 10**3.25) == pytest.approx(0.25, abs=0.01)
    assert np.all(sample_lengths(5, 700, 700, torch.device("cpu")).numpy() == 700)


def test_views_are_frequencies_with_the_noise_of_their_length():
    layout = FeatureLayout((3, 2, 1))
    rng = np.random.default_rng(3)
    parts = [rng.dirichlet(np.ones(w)) for w in layout.widths]
    x = torch.tensor(np.tile(np.concatenate(parts), (4000, 1)), dtype=torch.float32)
    torch.manual_seed(4)
    for length in (200, 20_000):
        views = length_views(x, layout, torch.full((4000,), float(length)))
        for k, part in zip(layout.ks, parts, strict=True):
            group = views[:, layout.group_slice(k)].double().numpy()
            draws = length - k + 1
            assert np.allclose(group.sum(axis=1), 1.0, atol=1e-5)
            assert np.all(np.abs(group * draws - np.round(group * draws)) < 1e-2)
            # binomial variance of a frequency: p (1 - p) / draws
            assert group.var(axis=0) == pytest.approx(part * (1 - part) / draws, rel=0.15)


def test_noisy_batch_replaces_or_appends_the_chosen_rows():
    layout = FeatureLayout((2, 1))
    x = torch.softmax(torch.randn(200, layout.n_features), dim=1)
    x = torch.cat(
        [
            x[:, layout.group_slice(k)] / x[:, layout.group_slice(k)].sum(1, keepdim=True)
            for k in layout.ks
        ],
        dim=1,
    )
    torch.manual_seed(5)
    clean, seen, twins = noisy_batch(x, layout, LengthNoise(0.5, 100, 1000))
    assert torch.equal(clean, x) and twins.numel() == 0
    changed = torch.any(seen != x, dim=1)
    assert int(changed.sum()) == 100  # exactly the share asked for
    torch.manual_seed(5)
    clean, seen, twins = noisy_batch(x, layout, LengthNoise(0.5, 100, 1000, 1.0))
    m = twins.numel()
    assert clean.shape[0] == seen.shape[0] == 200 + m and m == 100
    assert torch.equal(clean[:200], x) and torch.equal(seen[:200], x)
    assert torch.equal(clean[200:], x[twins])
    assert torch.equal(seen[200:][changed[twins]], seen[200:][changed[twins]])
    # the same rows are chosen either way (the same draws of the global RNG)
    assert torch.equal(torch.nonzero(changed).flatten(), twins)
    assert LengthNoise(0.0, 100, 1000) is not None
    assert LengthNoise.of(TrainConfig()) is None
    assert LengthNoise.of(TrainConfig(noise_fraction=0.3, consistency_weight=2.0)) == LengthNoise(
        0.3, 1000, 10_000, 2.0
    )


def test_consistency_term_matches_a_loop_twin():
    rng = np.random.default_rng(6)
    views, clean = rng.normal(size=(7, 3)), rng.normal(size=(7, 3))
    centre = clean.mean(axis=0)
    spread = np.mean([np.sum((c - centre) ** 2) for c in clean])
    twin = np.mean([np.sum((v - c) ** 2) for v, c in zip(views, clean, strict=True)]) / spread
    got = consistency_term(torch.tensor(views), torch.tensor(clean)).item()
    assert got == pytest.approx(twin, rel=1e-6)
    assert consistency_term(torch.zeros(0, 3), torch.zeros(0, 3)).item() == 0.0
    # the clean side is held fixed: no gradient flows into it
    v = torch.tensor(views, requires_grad=True)
    c = torch.tensor(clean, requires_grad=True)
    consistency_term(v, c).backward()
    assert v.grad is not None and c.grad is None


def test_forward_reconstructs_the_clean_rows_and_adds_the_consistency_term():
    config = VAEConfig(ks=(2, 1), hidden=(8,), latent=2, beta=0.1)
    model = VAE(config)
    layout = config.layout
    x = torch.cat([torch.softmax(torch.randn(64, w), dim=1) for w in layout.widths], dim=1)
    torch.manual_seed(7)
    _, target, plain = forward(model, x, config, 1.0, False)
    torch.manual_seed(7)
    _, target_noisy, noisy = forward(model, x, config, 1.0, False, LengthNoise(1.0, 50, 50))
    assert torch.equal(target, target_noisy)  # the target is always the clean CLR
    assert noisy["loss"].item() != plain["loss"].item()
    torch.manual_seed(7)
    _, target_twins, both = forward(model, x, config, 1.0, False, LengthNoise(1.0, 50, 50, 2.0))
    assert target_twins.shape[0] == 128  # every row and its view
    assert both["consistency"].item() > 0
    assert "consistency" not in noisy


def test_bad_noise_settings_are_refused():
    with pytest.raises(KmervaeError, match="noise_fraction"):
        TrainConfig(noise_fraction=1.5)
    with pytest.raises(KmervaeError, match="noise_min_length"):
        TrainConfig(noise_min_length=5000, noise_max_length=1000)
    with pytest.raises(KmervaeError, match="noise_min_length"):
        TrainConfig(noise_min_length=5)
    with pytest.raises(KmervaeError, match="needs length-noise"):
        TrainConfig(consistency_weight=1.0)


def test_training_with_views_learns_and_is_deterministic(tmp_path):
    data = clustered_dataset(tmp_path / "d")
    config = VAEConfig(ks=(4, 3, 2, 1), hidden=(32, 16), latent=4)
    recipe = quick(epochs=4, noise_fraction=0.5, noise_min_length=500, consistency_weight=1.0)
    losses = []
    for name in ("a", "b"):
        train_vae(data, tmp_path / name, config, recipe, runtime=RuntimeOptions(threads=1))
        history = [
            json.loads(line)
            for line in (tmp_path / name / "history.jsonl").read_text().splitlines()
        ]
        losses.append([h["val_loss"] for h in history if "val_loss" in h])
    assert losses[0] == losses[1]
    assert losses[0][-1] < losses[0][0]
    record = json.loads((tmp_path / "a" / "run.json").read_text())
    assert record["train_config"]["noise_fraction"] == 0.5
    assert record["train_config"]["consistency_weight"] == 1.0


def exit_code(argv):
    try:
        return main(argv)
    except SystemExit as exc:  # a usage error, from argparse
        return exc.code


def test_cli_noise_options_and_preset(tmp_path, capsys):
    data = clustered_dataset(tmp_path / "d")
    base = [
        "train",
        str(data),
        *["--hidden", "16", "--latent", "2", "--epochs", "1", "--batch-size", "48"],
    ]
    base += ["--kl-warmup", "1", "--fidelity-every", "0", "-t", "1", "-q"]
    run = tmp_path / "run"
    args = [
        *base,
        "-o",
        str(run),
        "--ks",
        "4,3,2,1",
        "--noise-fraction",
        "0.25",
        "--noise-lengths",
        "300-3000",
        "--consistency-weight",
        "0.5",
    ]
    assert main(args) == 0
    recipe = json.loads((run / "run.json").read_text())["train_config"]
    assert (
        recipe["noise_fraction"],
        recipe["noise_min_length"],
        recipe["noise_max_length"],
        recipe["consistency_weight"],
    ) == (0.25, 300, 3000, 0.5)
    # refused before anything is made: one line each
    for bad, message in (
        (["--noise-fraction", "2"], "--noise-fraction"),
        (["--noise-lengths", "3000-300"], "--noise-lengths"),
        (["--noise-lengths", "5-300"], "at least 10 bp"),
        (["--consistency-weight", "1"], "needs length-noise views"),
    ):
        out = tmp_path / "bad"
        assert exit_code([*base, "-o", str(out), "--ks", "4,3,2,1", *bad]) != 0
        err = capsys.readouterr().err
        assert message in err and "Traceback" not in err
        assert not out.exists()
    # the research preset: 5..1-mers with dropout; a dataset of 4..1-mers cannot feed it
    assert exit_code([*base, "-o", str(tmp_path / "research"), "--preset", "research"]) != 0
    assert "5" in capsys.readouterr().err
    assert not (tmp_path / "research").exists()


def test_views_of_long_contigs_are_as_noisy_as_real_short_contigs(tmp_path):
    """On a real genome (E. coli K-12, shipped with the demo): 2 kbp views of 50 kbp contigs
    scatter around the genome's profile about as far as real 2 kbp contigs do at 6- and
    5-mers, less at lower k; views at 50 kbp move far less."""
    from importlib.resources import files

    from kmervae.io.chop import ChopSpec, chop_genomes
    from kmervae.io.dataset import open_dataset
    from kmervae.kmers.profile import profile_fasta
    from kmervae.model.data import read_rows
    from kmervae.transform import clr

    genome = files("kmervae.demo") / "data" / "Escherichia_coli_K-12_MG1655.fa.gz"
    sets = {}
    for name, length in (("short", 2000), ("long", 50_000)):
        fasta = tmp_path / f"{name}.fa"
        chop_genomes([genome], fasta, ChopSpec(length, length, length))
        ds = open_dataset(profile_fasta([fasta], tmp_path / f"{name}.kmv").output)
        sets[name] = read_rows(ds, np.arange(ds.layout.n_features), np.arange(ds.n_rows))
    layout = ds.layout
    whole = sets["long"].mean(axis=0, keepdims=True)

    def scatter(x):
        """Mean squared CLR distance from the genome's profile, per k-group."""
        d = clr(x, layout) - clr(whole, layout)
        return {
            k: float(np.mean(np.sum(d[:, layout.group_slice(k)] ** 2, axis=1))) for k in layout.ks
        }

    torch.manual_seed(8)
    long_rows = torch.from_numpy(sets["long"])
    views = {
        length: length_views(long_rows, layout, torch.full((len(long_rows),), float(length)))
        for length in (2000, 50_000)
    }
    real, at_2k, at_50k = (
        scatter(sets["short"]),
        scatter(views[2000].numpy()),
        scatter(views[50_000].numpy()),
    )
    # sampling noise is nearly all of a short contig's 6- and 5-mer scatter; at lower k the
    # genome's own heterogeneity (which views do not add) is a growing part
    for k, low in ((6, 0.9), (5, 0.8), (4, 0.5), (3, 0.3)):
        assert low * real[k] < at_2k[k] <= 1.05 * real[k], (k, at_2k[k], real[k])
        assert at_50k[k] < 0.25 * at_2k[k]
