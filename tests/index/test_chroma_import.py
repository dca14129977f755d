"""``index build --from-chroma``: a collection written by ChromaDB itself, imported."""

from __future__ import annotations

import builtins

import numpy as np
import pytest

from kmervae.cli import main
from kmervae.index import open_index


def test_import_a_chroma_collection(tmp_path):
    chromadb = pytest.importorskip("chromadb")
    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 8)).astype(np.float32)
    client = chromadb.PersistentClient(path=str(tmp_path / "chroma"))
    col = client.create_collection("contigs", metadata={"hnsw:space": "cosine"})
    ids = [f"k{i}" for i in range(120)]
    col.add(ids=ids, embeddings=x.tolist(), metadatas=[{"length": 1000 + i} for i in range(120)])
    del col, client
    out = tmp_path / "store"
    assert main(["index", "build", "--from-chroma", str(tmp_path / "chroma"), "-o", str(out)]) == 0
    store = open_index(out)
    assert len(store) == 120 and store.dim == 8
    rows = store.lookup(["k0", "k57"])
    got = store.take(rows, ["embedding", "length", "source"])
    np.testing.assert_allclose(got["embedding"], x[[0, 57]], rtol=1e-6)
    np.testing.assert_array_equal(got["length"], [1000, 1057])
    assert got["source"][0] == "chroma:contigs"
    assert store.manifest["history"][0]["action"] == "import-chroma"
    # Euclidean neighbours, whatever metric the collection used
    hits = store.search(x[:1], 3)
    assert hits.rows[0, 0] == 0


def test_without_chromadb_the_error_says_how_to_install(tmp_path, monkeypatch, capsys):
    real_import = builtins.__import__

    def no_chroma(name, *args, **kwargs):
        if name == "chromadb":
            raise ImportError("no chromadb")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_chroma)
    (tmp_path / "c").mkdir()
    assert (
        main(["index", "build", "--from-chroma", str(tmp_path / "c"), "-o", str(tmp_path / "s")])
        == 1
    )
    assert "pip install 'kmervae[chroma]'" in capsys.readouterr().err
    assert not (tmp_path / "s").exists()
