"""Cluster numbering, the TSV files and per-cluster statistics, against naive twins."""

from __future__ import annotations

import io
from collections import Counter, defaultdict

import numpy as np
import pandas as pd
import pytest

from kmervae.cluster.clusters import canonical_labels, cluster_stats, write_clusters
from kmervae.errors import InputError
from kmervae.evaluate.labels import read_clustering


def test_canonical_labels_number_by_size_then_first_row():
    raw = np.array([7, 7, 3, -1, 3, 3, 9, 7, 5])
    # sizes: 7 -> 3 (first row 0), 3 -> 3 (first row 2), 9 -> 1 (row 6), 5 -> 1 (row 8)
    np.testing.assert_array_equal(canonical_labels(raw), [1, 1, 2, -1, 2, 2, 3, 1, 4])


@pytest.mark.parametrize("seed", range(5))
def test_canonical_labels_are_a_relabelling(seed):
    rng = np.random.default_rng(seed)
    raw = rng.integers(-1, 12, 300) * 17
    raw[raw < 0] = -1
    out = canonical_labels(raw)
    assert ((out < 0) == (raw < 0)).all()
    pairs = {(a, b) for a, b in zip(raw.tolist(), out.tolist(), strict=True) if a >= 0}
    assert len(pairs) == len({a for a, _ in pairs}) == len({b for _, b in pairs})
    sizes = Counter(out[out > 0].tolist())
    assert [sizes[c] for c in sorted(sizes)] == sorted(sizes.values(), reverse=True)
    np.testing.assert_array_equal(canonical_labels(out), out)


@pytest.mark.parametrize("seed", range(4))
def test_stats_match_a_naive_count(seed):
    rng = np.random.default_rng(seed)
    labels = canonical_labels(rng.integers(-1, 15, 400))
    lengths = rng.integers(100, 10_000, 400)
    gc = rng.random(400).astype(np.float32)
    gc[rng.random(400) < 0.05] = np.nan
    stats = cluster_stats(labels, lengths, gc)
    members = defaultdict(list)
    for r, c in enumerate(labels.tolist()):
        if c >= 0:
            members[c].append(r)
    assert stats.cluster.tolist() == sorted(members)
    for j, c in enumerate(stats.cluster.tolist()):
        rows = members[c]
        known = [gc[r] * 100 for r in rows if not np.isnan(gc[r])]
        assert stats.size[j] == len(rows)
        assert stats.total_bp[j] == sum(int(lengths[r]) for r in rows)
        assert stats.median_length[j] == pytest.approx(np.median([lengths[r] for r in rows]))
        if known:
            assert stats.gc_min[j] == pytest.approx(min(known), rel=1e-5)
            assert stats.gc_spread[j] == pytest.approx(max(known) - min(known), abs=1e-4)
        else:
            assert np.isnan(stats.gc_spread[j])
    table = io.StringIO()
    stats.write_tsv(table)
    table.seek(0)
    frame = pd.read_csv(table, sep="\t")
    assert list(frame.columns)[:3] == ["cluster", "size", "total_bp"]
    assert frame["size"].sum() == (labels >= 0).sum()


@pytest.mark.parametrize("fmt", ["kmervae", "vamb"])
@pytest.mark.parametrize("header", [True, False])
def test_both_layouts_read_back(tmp_path, fmt, header):
    ids = [f"contig_{i}" for i in range(50)]
    labels = canonical_labels(np.arange(50) % 7)
    labels[3] = -1
    buf = io.StringIO()
    assert write_clusters(buf, ids, labels, fmt) == 49
    text = buf.getvalue()
    if not header:
        text = text.split("\n", 1)[1]
    (tmp_path / "c.tsv").write_text(text)
    got = read_clustering(tmp_path / "c.tsv")
    assert got == {i: str(c) for i, c in zip(ids, labels.tolist(), strict=True) if c >= 0}
    if header:
        frame = pd.read_csv(tmp_path / "c.tsv", sep="\t")
        assert len(frame) == 49


def test_an_id_in_two_clusters_is_named(tmp_path):
    (tmp_path / "c.tsv").write_text("contig_id\tcluster\na\t1\nb\t1\na\t2\n")
    with pytest.raises(InputError, match=r"line 4: id 'a' is in two clusters"):
        read_clustering(tmp_path / "c.tsv")
