"""The ``--columns`` TSV: types, missing ids, and the names it refuses."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kmervae.errors import InputError
from kmervae.index.ingest import read_columns_tsv


def test_columns_tsv_types_and_missing_ids(tmp_path):
    tsv = tmp_path / "c.tsv"
    tsv.write_text("id\ttaxon\tdepth\tbins\nc1\tE. coli\t3.5\t7\nc2\t\t\t8\n")
    extra = read_columns_tsv(tsv)
    assert extra.schema == {"taxon": "string", "depth": "float64", "bins": "float64"}
    got = extra.for_ids(["c2", "zz", "c1"])
    assert list(got["taxon"]) == ["", "", "E. coli"]
    np.testing.assert_array_equal(got["depth"], [np.nan, np.nan, 3.5])
    np.testing.assert_array_equal(got["bins"], [8, np.nan, 7])


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("id\tlength\nc1\t5\n", "column 'length' cannot be used"),
        ("id\tmy col\nc1\t5\n", "column 'my col' cannot be used"),
        ("id\tx\nc1\t5\nc1\t6\n", "id 'c1' appears twice"),
        ("id\nc1\n", "at least one column"),
    ],
)
def test_bad_columns_tsv(tmp_path, text, message):
    tsv = tmp_path / "c.tsv"
    tsv.write_text(text)
    with pytest.raises(InputError, match=message):
        read_columns_tsv(tsv)


def test_source_holds_the_file_name_and_source_path_the_path(tmp_path):
    from embed_factory import SMALL, random_profiles

    from kmervae.index import open_index
    from kmervae.index.ingest import build_store
    from kmervae.io.dataset import DatasetWriter
    from kmervae.io.embeddings import EmbeddingsWriter

    n = 12
    ids = [f"c{i}" for i in range(n)]
    sources = np.arange(n, dtype=np.int32) % 3
    with DatasetWriter(tmp_path / "ds", SMALL.layout) as writer:
        for name in ("marine_1.fa", "marine_2.fa.gz", "soil.fa"):
            writer.add_source({"name": name, "path": f"/data/run7/{name}"})
        writer.append(
            random_profiles(n, SMALL.layout), np.full(n, 1000, np.int64), ids, sources=sources
        )
        ds = writer.close()
    x = np.random.default_rng(0).normal(size=(n, 4)).astype(np.float32)
    with EmbeddingsWriter(tmp_path / "emb", 4, columns=("lengths", "sources")) as emb:
        emb.append(x, lengths=np.full(n, 1000, np.int64), sources=sources)
        emb.append_ids(ids)
        emb.close({"model": {"fingerprint": "f"}, "dataset": {"path": str(ds)}})
    for backend in ("exact", "lance"):
        build_store([tmp_path / "emb"], tmp_path / backend, backend=backend)
        store = open_index(tmp_path / backend)
        got = store.take(np.arange(n), ["source", "source_path"])
        names = ["marine_1.fa", "marine_2.fa.gz", "soil.fa"]
        assert list(got["source"]) == [names[s] for s in sources]
        assert list(got["source_path"]) == [f"/data/run7/{names[s]}" for s in sources]
        hits = store.search(x[:1], n, where="source_path like '/data/run7/marine%'").rows[0]
        assert sorted(hits[hits >= 0].tolist()) == [i for i in range(n) if sources[i] < 2]
        hits = store.search(x[:1], n, where="source in ('soil.fa')").rows[0]
        assert sorted(hits[hits >= 0].tolist()) == [i for i in range(n) if sources[i] == 2]


def test_a_store_without_source_path_takes_new_rows(tmp_path):
    from cluster_factory import write_embeddings, write_store

    from kmervae.index import open_index
    from kmervae.index.ingest import add_to_store

    x = np.random.default_rng(0).normal(size=(10, 4)).astype(np.float32)
    lengths, gc = np.full(10, 1000, np.int64), np.full(10, 0.5, np.float32)
    store = write_store(tmp_path / "old", x[:6], lengths[:6], gc[:6])  # length, gc, source
    emb = write_embeddings(tmp_path / "emb", x[6:], lengths[6:], gc[6:], ["n1", "n2", "n3", "n4"])
    manifest = json.loads((store / "manifest.json").read_text())
    manifest["model"] = {"fingerprint": "test"}
    (store / "manifest.json").write_text(json.dumps(manifest))
    add_to_store(store, [emb])
    reopened = open_index(store)
    assert len(reopened) == 10 and "source_path" not in reopened.schema
