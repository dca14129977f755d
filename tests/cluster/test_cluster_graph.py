"""The clustering graph and its kernels against naive twins (dicts and sets)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from kmervae.cluster.graph import GraphOptions, build_edges
from kmervae.cluster.kernels import WEIGHT_DECIMALS, format_edges, shared_neighbour_weights
from kmervae.errors import KmervaeError


def random_knn(n: int, k: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Exact k-NN lists of random points (with a few pruned edges), and random lengths."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 3))
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    np.fill_diagonal(d, np.inf)
    idx = np.argsort(d, axis=1, kind="stable")[:, :k].astype(np.int32)
    dist = np.take_along_axis(d, idx, axis=1).astype(np.float32)
    cut = rng.random(n) < 0.1  # some rows lost their last edge already (knn pruning)
    idx[cut, -1] = -1
    dist[cut, -1] = np.inf
    return idx, dist, rng.integers(500, 5000, n)


def naive_edges(idx, dist, opts: GraphOptions, lengths) -> dict[tuple[int, int], float]:
    if opts.neighbours is not None:
        idx, dist = idx[:, : opts.neighbours], dist[:, : opts.neighbours]
    n, k = idx.shape
    keep = [opts.min_length == 0 or lengths[i] >= opts.min_length for i in range(n)]
    directed = {}
    for i in range(n):
        for c in range(k):
            j = int(idx[i, c])
            if j < 0 or not keep[i] or not keep[j]:
                continue
            if opts.max_distance is not None and dist[i, c] > opts.max_distance:
                continue
            directed[(i, j)] = float(dist[i, c])
    if opts.max_in_degree is not None:
        incoming: dict[int, list[tuple[float, int]]] = {}
        for (i, j), d in directed.items():
            incoming.setdefault(j, []).append((d, i))
        for j, sources in incoming.items():
            for _d, i in sorted(sources)[opts.max_in_degree :]:
                del directed[(i, j)]
    sets = {}
    for i in range(n):
        members = {i} | {int(j) for j in idx[i, : opts.snn_k] if j >= 0 and keep[j]}
        sets[i] = members if keep[i] else set()
    weights = {}
    for (i, j), d in directed.items():
        if opts.weight == "inverse":
            w = 1 / (d + opts.delta)
        else:
            w = len(sets[i] & sets[j]) / len(sets[i] | sets[j])
        weights[(i, j)] = w
    out = {}
    for (i, j), w in weights.items():
        pair = (min(i, j), max(i, j))
        both = (j, i) in weights
        if opts.symmetrise == "mutual" and not both:
            continue
        out[pair] = max(out.get(pair, 0.0), w)
    return {p: w for p, w in out.items() if w > 0}


OPTIONS = [
    GraphOptions(max_in_degree=None),
    GraphOptions(max_in_degree=3),
    GraphOptions(max_distance=0.5, max_in_degree=4, delta=0.2),
    GraphOptions(symmetrise="mutual"),
    GraphOptions(min_length=2000, max_in_degree=5),
    GraphOptions(weight="snn", snn_k=5, max_in_degree=None),
    GraphOptions(weight="snn", snn_k=8, symmetrise="mutual", min_length=1500),
    GraphOptions(neighbours=3, max_in_degree=2),
    GraphOptions(neighbours=4, weight="snn", snn_k=6),
]


@pytest.mark.parametrize("opts", OPTIONS, ids=range(len(OPTIONS)))
@pytest.mark.parametrize("seed", [0, 1])
def test_edges_match_the_naive_graph(opts, seed):
    idx, dist, lengths = random_knn(150, 8, seed)
    edges = build_edges(idx, dist, opts, lengths)
    want = naive_edges(idx, dist, opts, lengths)
    got = {
        (int(a), int(b)): float(w)
        for a, b, w in zip(edges.src, edges.dst, edges.weight, strict=True)
    }
    assert set(got) == set(want)
    for pair, w in want.items():
        assert got[pair] == pytest.approx(w, rel=1e-5)
    assert (edges.src < edges.dst).all()
    keys = edges.src.astype(np.int64) * 150 + edges.dst
    assert (np.diff(keys) > 0).all()  # sorted, each pair once
    assert edges.nodes.sum() == (lengths >= opts.min_length).sum()


def test_the_input_arrays_are_not_changed():
    idx, dist, lengths = random_knn(80, 6, 3)
    before = idx.copy(), dist.copy()
    build_edges(idx, dist, GraphOptions(max_in_degree=2, max_distance=0.3), lengths)
    np.testing.assert_array_equal(idx, before[0])
    np.testing.assert_array_equal(dist, before[1])


@pytest.mark.parametrize(
    "kwargs",
    [
        {"weight": "exp"},
        {"symmetrise": "both"},
        {"max_distance": 0},
        {"max_in_degree": 0},
        {"delta": 0},
        {"snn_k": 0},
        {"min_length": -1},
        {"neighbours": 0},
    ],
)
def test_options_are_checked(kwargs):
    with pytest.raises(KmervaeError):
        GraphOptions(**kwargs)


def test_shared_neighbour_kernel_is_the_jaccard_index():
    rng = np.random.default_rng(5)
    n, m = 60, 7
    sets = np.array([rng.choice(n, m, replace=False) for _ in range(n)], dtype=np.int64)
    sets[rng.random((n, m)) < 0.1] = -1
    sets.sort(axis=1)
    src, dst = rng.integers(0, n, 200), rng.integers(0, n, 200)
    out = np.empty(200, np.float32)
    shared_neighbour_weights(sets, src, dst, out)
    for e in range(200):
        a = {int(v) for v in sets[src[e]] if v >= 0}
        b = {int(v) for v in sets[dst[e]] if v >= 0}
        want = len(a & b) / len(a | b) if a | b else 0.0
        assert out[e] == pytest.approx(want, rel=1e-6)


def naive_format(src, dst, weight) -> bytes:
    scale = 10**WEIGHT_DECIMALS
    lines = []
    for s, d, w in zip(src.tolist(), dst.tolist(), weight.tolist(), strict=True):
        fixed = int(np.floor(np.float64(np.float32(w)) * scale + 0.5))
        lines.append(f"{s}\t{d}\t{fixed // scale}.{fixed % scale:0{WEIGHT_DECIMALS}d}\n")
    return "".join(lines).encode()


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.integers(0, 2**31 - 2),
            st.integers(0, 2**31 - 2),
            st.floats(0.0, 1e6, allow_nan=False, width=32),
        ),
        max_size=40,
    ),
    st.integers(64, 300),
)
def test_edge_text_is_the_naive_text(edges, buffer_size):
    src = np.array([e[0] for e in edges], np.int64)
    dst = np.array([e[1] for e in edges], np.int64)
    weight = np.array([e[2] for e in edges], np.float32)
    buf = np.empty(buffer_size, np.uint8)
    out = b""
    e = 0
    while e < len(src):
        e, nbytes = format_edges(src, dst, weight, e, buf)
        out += buf[:nbytes].tobytes()
    assert out == naive_format(src, dst, weight)
    for line, w in zip(out.decode().splitlines(), weight.tolist(), strict=True):
        assert abs(float(line.split("\t")[2]) - w) <= 0.5e-6 + 1e-6 * w
