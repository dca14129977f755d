"""Batched IVF search list by list returns what FAISS's own search returns."""

from __future__ import annotations

import numpy as np
import pytest

faiss = pytest.importorskip("faiss")

from kmervae.index.scan import search_by_lists  # noqa: E402


@pytest.mark.parametrize("threads", [1, 3])
@pytest.mark.parametrize(("k", "nprobe"), [(1, 1), (10, 4), (25, 64)])
def test_same_neighbours_as_faiss(k, nprobe, threads):
    rng = np.random.default_rng(3)
    centres = rng.standard_normal((30, 24)).astype(np.float32) * 4
    x = centres[rng.integers(0, 30, 6000)] + rng.standard_normal((6000, 24)).astype(np.float32)
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(24), 24, 40)
    index.train(x)
    index.add(x)
    queries = x[:200] + 0.01
    index.nprobe = nprobe
    want_d, want_i = index.search(queries, k)
    cache: dict = {}
    got_d, got_i = search_by_lists(index, queries, k, nprobe, cache, threads=threads)
    assert len(cache) > 0  # the norms of the lists it read, for the next batch
    _, again_i = search_by_lists(index, queries, k, nprobe, cache, threads=threads)
    np.testing.assert_array_equal(again_i, got_i)
    assert got_i.shape == (200, k) and got_i.dtype == np.int64
    np.testing.assert_array_equal(np.sort(got_i, axis=1), np.sort(want_i, axis=1))
    np.testing.assert_allclose(got_d, want_d, rtol=1e-4, atol=1e-3)
    assert (np.diff(got_d, axis=1) >= 0).all()


def test_lists_with_fewer_rows_than_k_pad_with_minus_one():
    x = np.arange(40, dtype=np.float32).reshape(20, 2)
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(2), 2, 4)
    index.train(x)
    index.add(x)
    d, i = search_by_lists(index, x[:3], 30, 1)
    assert (i[:, -1] == -1).all() and np.isinf(d[:, -1]).all()
    assert (i[:, 0] >= 0).all()


@pytest.mark.parametrize("threads", [1, 2])
def test_a_filter_gives_faiss_answers_with_an_id_selector(threads):
    rng = np.random.default_rng(4)
    x = rng.standard_normal((5000, 16)).astype(np.float32)
    index = faiss.IndexIVFFlat(faiss.IndexFlatL2(16), 16, 30)
    index.train(x)
    index.add(x)
    keep = rng.random(5000) < 0.3
    bits = np.packbits(keep, bitorder="little")
    params = faiss.SearchParametersIVF(nprobe=5)
    params.sel = faiss.IDSelectorBitmap(len(keep), faiss.swig_ptr(bits))
    queries = x[:100] + 0.01
    want_d, want_i = index.search(queries, 7, params=params)
    got_d, got_i = search_by_lists(index, queries, 7, 5, keep=keep, threads=threads)
    assert keep[got_i[got_i >= 0]].all()
    np.testing.assert_array_equal(np.sort(got_i, axis=1), np.sort(want_i, axis=1))
    np.testing.assert_allclose(got_d, want_d, rtol=1e-4, atol=1e-3)
