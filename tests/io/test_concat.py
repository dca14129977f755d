"""``concat_datasets``: joining, the out-of-core shuffle and the split, on small real files."""

from __future__ import annotations

import gzip
import hashlib
import json
from itertools import permutations

import numpy as np
import pytest
from profile_factory import SMALL_LAYOUT, Expected, hidden_leftovers, read_back, write_dataset

from kmervae.errors import InputError, KmervaeError
from kmervae.io.concat import concat_datasets, split_output_paths
from kmervae.io.shuffle import SplitSelector, bucket_count, bucket_of_keys, order_by_key
from kmervae.kmers.layout import FeatureLayout
from kmervae.provenance import file_sha256

TINY_MEMORY_MB = 0.02  # ~20 kB: dozens of buckets for a few hundred 136-feature rows


def assert_rows_match(out: Expected, *inputs: Expected, dtype: type = np.float32) -> None:
    """Every output row equals the input row with its id (features, length, gc, ...);
    ``dtype``: the output's feature type (inputs are rounded to it)."""
    expected: dict[str, tuple] = {}
    for inp in inputs:
        expected.update(inp.rows())
    got = out.rows()
    assert len(got) == len(out.ids)
    for ident, (feat, length, gc, amb, src) in got.items():
        e_feat, e_length, e_gc, e_amb, e_src = expected[ident]
        np.testing.assert_array_equal(feat, e_feat.astype(dtype).astype(np.float32))
        assert length == e_length
        assert gc == e_gc or (np.isnan(gc) and np.isnan(e_gc))
        assert amb == e_amb
        if src != "?":
            assert src == e_src


@pytest.fixture
def two(tmp_path):
    a = write_dataset(tmp_path / "a", 60, seed=1, n_sources=2)
    b = write_dataset(tmp_path / "b", 41, seed=2, n_sources=3)
    return a, b


# -- plain concatenation ------------------------------------------------------------------
def test_concat_keeps_order_and_every_column(tmp_path, two):
    a, b = two
    seen = []
    summary = concat_datasets(
        [a.path, b.path], tmp_path / "out", progress=lambda n, total: seen.append((n, total))
    )
    assert summary.rows_per_output == [101] and summary.seed is None
    out = read_back(tmp_path / "out")
    assert out.ids == a.ids + b.ids
    np.testing.assert_array_equal(out.features, np.concatenate([a.features, b.features]))
    np.testing.assert_array_equal(out.lengths, np.concatenate([a.lengths, b.lengths]))
    np.testing.assert_array_equal(out.gc, np.concatenate([a.gc, b.gc]))
    np.testing.assert_array_equal(out.ambiguous, np.concatenate([a.ambiguous, b.ambiguous]))
    assert out.source_names == a.source_names + b.source_names
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert len(manifest["sources"]) == 5
    assert {s["dataset"] for s in manifest["sources"]} == {str(a.path), str(b.path)}
    prov = manifest["provenance"]
    assert [i["path"] for i in prov["inputs"]] == [str(a.path), str(b.path)]
    assert prov["inputs"][0]["features_sha256"] == file_sha256(a.path / "features.npy")
    assert prov["inputs"][1]["ids_sha256"] == file_sha256(b.path / "ids.txt")
    assert prov["kmervae_version"] and "seed" in prov
    assert sum(n for n, _ in seen) == 101 and {t for _, t in seen} == {101}
    assert hidden_leftovers(tmp_path) == []


def test_layout_mismatch_names_both_files(tmp_path):
    a = write_dataset(tmp_path / "a", 5)
    c = write_dataset(tmp_path / "c", 5, layout=FeatureLayout((3,)))
    with pytest.raises(InputError, match="layouts differ") as err:
        concat_datasets([a.path, c.path], tmp_path / "out")
    assert str(a.path) in str(err.value) and str(c.path) in str(err.value)
    assert not (tmp_path / "out").exists() and hidden_leftovers(tmp_path) == []


def test_legacy_inputs_with_plain_and_gzip_ids(tmp_path, two):
    a, _ = two
    leg = write_dataset(tmp_path / "leg", 23, seed=5, fmt="legacy", gzip_ids=True)
    leg2 = write_dataset(tmp_path / "leg2", 7, seed=6, fmt="legacy")
    assert not (tmp_path / "leg.txt").exists() and (tmp_path / "leg.txt.gz").exists()
    concat_datasets([leg.path, a.path, leg2.path], tmp_path / "out")
    out = read_back(tmp_path / "out")
    assert out.ids == leg.ids + a.ids + leg2.ids
    assert_rows_match(out, leg, a, leg2)
    assert out.source_names[:23] == [str(leg.path)] * 23  # the legacy file is the source
    assert (out.ambiguous[:23] == -1).all()
    prov = json.loads((tmp_path / "out" / "manifest.json").read_text())["provenance"]
    assert prov["inputs"][0]["features_sha256"] == file_sha256(leg.path)
    # the checksum of the ids text, whether the file holding it is compressed or not
    ids_text = gzip.decompress((tmp_path / "leg.txt.gz").read_bytes())
    assert prov["inputs"][0]["ids_sha256"] == hashlib.sha256(ids_text).hexdigest()
    assert prov["inputs"][0]["kind"] == "legacy"


def test_rows_without_source_point_at_their_dataset(tmp_path):
    a = write_dataset(tmp_path / "a", 10, unknown_sources=True)
    concat_datasets([a.path], tmp_path / "out")
    out = read_back(tmp_path / "out")
    assert out.source_names == a.source_names
    assert out.source_names[0] == str(a.path)


def test_legacy_output(tmp_path, two):
    a, b = two
    concat_datasets([a.path, b.path], tmp_path / "flat", fmt="legacy")
    matrix = np.load(tmp_path / "flat.npy")
    assert matrix.shape == (101, 1 + SMALL_LAYOUT.n_features) and matrix.dtype == np.float32
    np.testing.assert_array_equal(matrix[:, 0], np.concatenate([a.lengths, b.lengths]))
    np.testing.assert_array_equal(matrix[:, 1:], np.concatenate([a.features, b.features]))
    assert (tmp_path / "flat.txt").read_text().split() == a.ids + b.ids
    side = json.loads((tmp_path / "flat.json").read_text())
    assert side["provenance"]["inputs"][0]["path"] == str(a.path)
    with pytest.raises(KmervaeError, match="float32 only"):
        concat_datasets([a.path], tmp_path / "half", fmt="legacy", dtype="float16")
    assert not (tmp_path / "half.npy").exists() and hidden_leftovers(tmp_path) == []


def test_float16_output_and_default_dtype(tmp_path, two):
    a, b = two
    concat_datasets([a.path, b.path], tmp_path / "half", dtype="float16")
    half = read_back(tmp_path / "half")
    assert json.loads((tmp_path / "half" / "manifest.json").read_text())["dtype"] == "float16"
    expected = np.concatenate([a.features, b.features]).astype(np.float16).astype(np.float32)
    np.testing.assert_array_equal(half.features, expected)
    # the default follows the first input
    h = write_dataset(tmp_path / "h", 9, seed=4, dtype="float16")
    concat_datasets([h.path, a.path], tmp_path / "narrow")
    narrow = read_back(tmp_path / "narrow")
    assert json.loads((tmp_path / "narrow" / "manifest.json").read_text())["dtype"] == "float16"
    assert_rows_match(narrow, h, a, dtype=np.float16)
    concat_datasets([a.path, h.path], tmp_path / "wide")
    assert json.loads((tmp_path / "wide" / "manifest.json").read_text())["dtype"] == "float32"
    assert_rows_match(read_back(tmp_path / "wide"), a, h)


def test_duplicate_ids_are_an_error_unless_prefixed(tmp_path):
    a = write_dataset(tmp_path / "a", 8, ids=[f"c{i}" for i in range(8)])
    b = write_dataset(tmp_path / "b", 5, ids=["x", "y", "c3", "z", "w"], seed=3)
    with pytest.raises(InputError, match="'c3'") as err:
        concat_datasets([a.path, b.path], tmp_path / "out", shuffle=True, seed=1)
    assert str(a.path) in str(err.value) and str(b.path) in str(err.value)
    assert "prefix_ids" in str(err.value)
    assert not (tmp_path / "out").exists() and hidden_leftovers(tmp_path) == []
    concat_datasets([a.path, b.path], tmp_path / "out", prefix_ids=True)
    assert read_back(tmp_path / "out").ids == [f"a_{i}" for i in a.ids] + [f"b_{i}" for i in b.ids]


def test_changed_ids_fail_the_checksum(tmp_path):
    a = write_dataset(tmp_path / "a", 6, ids=[f"c{i}" for i in range(6)])
    (a.path / "ids.txt").write_text("".join(f"d{i}\n" for i in range(6)))
    with pytest.raises(InputError, match="checksum"):
        concat_datasets([a.path], tmp_path / "out")


def test_outputs_that_exist_or_are_inputs(tmp_path, two):
    a, b = two
    with pytest.raises(KmervaeError, match="one of the inputs"):
        concat_datasets([a.path, b.path], a.path, overwrite=True)
    with pytest.raises(KmervaeError, match="given twice"):
        concat_datasets([a.path, a.path], tmp_path / "out")
    (tmp_path / "out").mkdir()
    with pytest.raises(KmervaeError, match="already exists"):
        concat_datasets([a.path], tmp_path / "out")
    concat_datasets([a.path], tmp_path / "out", overwrite=True)
    assert read_back(tmp_path / "out").ids == a.ids
    assert read_back(a.path).ids == a.ids


# -- shuffle --------------------------------------------------------------------------------
def test_shuffle_is_a_permutation_that_keeps_rows_together(tmp_path, two):
    a, b = two
    seen = []
    summary = concat_datasets(
        [a.path, b.path],
        tmp_path / "out",
        shuffle=True,
        seed=7,
        progress=lambda n, total: seen.append((n, total)),
    )
    out = read_back(tmp_path / "out")
    assert sorted(out.ids) == sorted(a.ids + b.ids)
    assert out.ids != a.ids + b.ids
    assert_rows_match(out, a, b)
    assert summary.n_buckets >= 1 and summary.seed == 7
    assert sum(n for n, _ in seen) == 2 * 101  # two passes
    manifest = json.loads((tmp_path / "out" / "manifest.json").read_text())
    assert manifest["provenance"]["seed"] == 7 and manifest["provenance"]["concat"]["shuffle"]
    assert hidden_leftovers(tmp_path) == []


def test_shuffle_is_deterministic_by_seed(tmp_path, two):
    a, b = two
    orders = {}
    for name, seed in (("s1", 11), ("s1again", 11), ("s2", 12)):
        concat_datasets([a.path, b.path], tmp_path / name, shuffle=True, seed=seed)
        orders[name] = read_back(tmp_path / name).ids
    assert orders["s1"] == orders["s1again"]
    assert orders["s1"] != orders["s2"]
    a1 = (tmp_path / "s1" / "features.npy").read_bytes()
    assert a1 == (tmp_path / "s1again" / "features.npy").read_bytes()


def test_shuffle_with_many_buckets_gives_the_same_permutation(tmp_path, two):
    a, b = two
    legacy = write_dataset(tmp_path / "leg", 150, seed=9, fmt="legacy")
    inputs = [a.path, legacy.path, b.path]
    big = concat_datasets(inputs, tmp_path / "big", shuffle=True, seed=5)
    tiny = concat_datasets(
        inputs, tmp_path / "tiny", shuffle=True, seed=5, memory_mb=TINY_MEMORY_MB
    )
    assert big.n_buckets == 1 and tiny.n_buckets > 10
    out = read_back(tmp_path / "tiny")
    assert sorted(out.ids) == sorted(a.ids + legacy.ids + b.ids)
    assert_rows_match(out, a, legacy, b)
    assert out.ids == read_back(tmp_path / "big").ids
    assert out.source_names == read_back(tmp_path / "big").source_names
    assert hidden_leftovers(tmp_path) == []


def test_shuffle_reaches_every_order(tmp_path):
    a = write_dataset(tmp_path / "a", 3, ids=["x", "y", "z"])
    found = set()
    for seed in range(40):
        concat_datasets([a.path], tmp_path / "out", shuffle=True, seed=seed, overwrite=True)
        found.add(tuple((tmp_path / "out" / "ids.txt").read_text().split()))
    assert found == set(permutations(["x", "y", "z"]))


def test_bucket_of_keys_is_monotone_and_in_range():
    keys = np.sort(np.random.default_rng(0).integers(0, 2**64, 5000, dtype=np.uint64))
    keys[-1] = np.uint64(2**64 - 1)
    for n_buckets in (1, 3, 64, 1000):
        buckets = bucket_of_keys(keys, n_buckets)
        assert (np.diff(buckets.astype(np.int64)) >= 0).all()
        assert buckets.min() >= 0 and buckets.max() < n_buckets
    assert bucket_count(10, 100, 10**9) == 1
    assert bucket_count(1000, 100, 2000) == 100
    assert bucket_count(3, 10**6, 10) == 3  # never more buckets than rows


def test_order_by_key_sorts_and_shuffles_ties_by_seed():
    keys = np.array([5, 3, 9, 3, 3, 1, 3, 9], np.uint64)
    tie_orders = set()
    for seed in range(20):
        order = order_by_key(keys, seed)
        assert sorted(order.tolist()) == list(range(8))
        assert (np.diff(keys[order].astype(np.int64)) >= 0).all()
        np.testing.assert_array_equal(order, order_by_key(keys, seed))
        tie_orders.add(tuple(order[1:5].tolist()))
    assert len(tie_orders) > 5  # the four equal keys are not left in input order


# -- split ----------------------------------------------------------------------------------
def test_split_sizes_disjoint_union_and_order(tmp_path, two):
    a, b = two
    summary = concat_datasets([a.path, b.path], tmp_path / "out", split=0.9, seed=4)
    train_path, val_path = split_output_paths(tmp_path / "out", "native")
    assert summary.outputs == [train_path, val_path]
    assert train_path.name == "out.train" and val_path.name == "out.validation"
    assert summary.rows_per_output == [round(0.9 * 101), 101 - round(0.9 * 101)]
    train, val = read_back(train_path), read_back(val_path)
    everything = a.ids + b.ids
    assert set(train.ids).isdisjoint(val.ids)
    assert sorted(train.ids + val.ids) == sorted(everything)
    position = {ident: i for i, ident in enumerate(everything)}
    for side in (train, val):  # without --shuffle each side keeps the input order
        assert [position[i] for i in side.ids] == sorted(position[i] for i in side.ids)
        assert_rows_match(side, a, b)
    for path, side in ((train_path, "train"), (val_path, "validation")):
        prov = json.loads((path / "manifest.json").read_text())["provenance"]
        assert prov["split_side"] == side and prov["seed"] == 4
    again = concat_datasets([a.path, b.path], tmp_path / "again", split=0.9, seed=4)
    assert read_back(again.outputs[1]).ids == val.ids
    other = concat_datasets([a.path, b.path], tmp_path / "other", split=0.9, seed=5)
    assert read_back(other.outputs[1]).ids != val.ids


def test_split_after_shuffle_takes_the_first_rows(tmp_path, two):
    a, b = two
    concat_datasets([a.path, b.path], tmp_path / "mixed", shuffle=True, seed=8)
    summary = concat_datasets(
        [a.path, b.path],
        tmp_path / "out",
        shuffle=True,
        split=0.75,
        seed=8,
        memory_mb=TINY_MEMORY_MB,
    )
    order = read_back(tmp_path / "mixed").ids
    n_train = round(0.75 * 101)
    assert read_back(summary.outputs[0]).ids == order[:n_train]
    assert read_back(summary.outputs[1]).ids == order[n_train:]


def test_legacy_split_names(tmp_path, two):
    a, b = two
    concat_datasets([a.path, b.path], tmp_path / "flat.npy", fmt="legacy", split=0.5, seed=1)
    for side in ("train", "validation"):
        assert (tmp_path / f"flat.{side}.npy").exists()
        assert (tmp_path / f"flat.{side}.txt").exists()
    n = [len((tmp_path / f"flat.{s}.txt").read_text().split()) for s in ("train", "validation")]
    assert n == [round(0.5 * 101), 101 - round(0.5 * 101)]
    # a dotted NAME finds its own ids (flat.train.txt, not flat.txt)
    train = read_back(tmp_path / "flat.train.npy")
    assert train.ids == (tmp_path / "flat.train.txt").read_text().split()


@pytest.mark.parametrize("fraction", [0.0, 1.0, 1.5, -0.2])
def test_split_fraction_must_be_inside_0_1(tmp_path, two, fraction):
    with pytest.raises(KmervaeError, match="between 0 and 1"):
        concat_datasets([two[0].path], tmp_path / "out", split=fraction)


@pytest.mark.parametrize(("fraction", "empty"), [(0.05, "no train"), (0.95, "no validation")])
def test_split_may_not_leave_a_side_empty(tmp_path, fraction, empty):
    a = write_dataset(tmp_path / "a", 5)
    with pytest.raises(KmervaeError, match=empty):
        concat_datasets([a.path], tmp_path / "out", split=fraction)
    assert hidden_leftovers(tmp_path) == []


def test_split_writes_both_sides_or_neither(tmp_path, two):
    a, b = two
    (tmp_path / "out.validation").mkdir()
    with pytest.raises(KmervaeError, match="already exists"):
        concat_datasets([a.path, b.path], tmp_path / "out", split=0.5, seed=1)
    assert not (tmp_path / "out.train").exists() and hidden_leftovers(tmp_path) == []


def test_split_selector_is_exact_and_independent_of_block_sizes():
    n, n_train = 200_000, 123_457  # several 65,536-row windows
    whole = SplitSelector(n, n_train, np.random.default_rng(3)).take(n)
    assert whole.sum() == n_train
    selector = SplitSelector(n, n_train, np.random.default_rng(3))
    rng = np.random.default_rng(0)
    parts, left = [], n
    while left:
        k = min(left, int(rng.integers(1, 30_000)))
        parts.append(selector.take(k))
        left -= k
    np.testing.assert_array_equal(np.concatenate(parts), whole)
    # roughly uniform: each half holds about its share of train rows
    assert abs(whole[: n // 2].sum() - n_train / 2) < 2000
