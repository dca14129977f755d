"""``kmervae export`` of embeddings: VAMB's ``latent.npz`` and a TSV, streamed, from an
embedding store or an index store."""

from __future__ import annotations

import json
import tracemalloc
import zipfile

import numpy as np
import pandas as pd
import pytest
from cluster_factory import blobs, write_embeddings, write_store
from embed_factory import write_model

from kmervae.cli import main
from kmervae.errors import InputError
from kmervae.io import latent
from kmervae.io.latent import LatentSource, export_latent, names_path, open_latent_source
from kmervae.provenance import sidecar_path


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("latent")
    x, _, lengths, gc = blobs(500, 4, 12, seed=3)
    ids = [f"contig_{i}" for i in range(500)]
    emb = write_embeddings(tmp / "emb", x, lengths, gc, ids)
    stores = {b: write_store(tmp / b, x, lengths, gc, ids, backend=b) for b in ("exact", "lance")}
    return {"tmp": tmp, "x": x, "ids": ids, "emb": emb, **stores}


def read_vamb(path):
    """As ``vamb.vambtools.read_npz`` reads a latent file."""
    npz = np.load(path)
    array = np.ascontiguousarray(npz["arr_0"])
    npz.close()
    return array


@pytest.mark.parametrize("source", ["emb", "exact", "lance"])
def test_npz_is_vambs_layout(data, tmp_path, source):
    out = tmp_path / "latent.npz"
    assert main(["export", str(data[source]), "-o", str(out), "-q"]) == 0
    array = read_vamb(out)
    assert array.dtype == np.float32 and array.flags["C_CONTIGUOUS"]
    np.testing.assert_array_equal(array, data["x"])
    with zipfile.ZipFile(out) as archive:
        (member,) = archive.infolist()
        assert member.filename == "arr_0.npy" and member.compress_type == zipfile.ZIP_DEFLATED
    assert (tmp_path / "latent.names.txt").read_text().splitlines() == data["ids"]
    record = json.loads(sidecar_path(out).read_text())
    assert record["n_rows"] == 500 and record["shape"] == [500, 12]
    assert record["names"] == "latent.names.txt" and record["source"]["kind"] in (
        "embeddings",
        "store",
    )
    assert record["provenance"]["command"][:2] == ["kmervae", "export"]
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "latent.names.txt",
        "latent.npz",
        "latent.npz.json",
    ]


def test_tsv_and_format_override(data, tmp_path):
    out = tmp_path / "vectors.txt"
    assert main(["export", str(data["emb"]), "-o", str(out), "--format", "tsv", "-q"]) == 0
    frame = pd.read_csv(out, sep="\t")
    assert list(frame.columns) == ["contig", *(f"dim_{j}" for j in range(12))]
    assert frame["contig"].tolist() == data["ids"]
    np.testing.assert_array_equal(frame.iloc[:, 1:].to_numpy(np.float32), data["x"])
    other = tmp_path / "latent.bin"
    assert main(["export", str(data["emb"]), "-o", str(other), "--format", "npz", "-q"]) == 0
    assert names_path(other).name == "latent.bin.names.txt" and names_path(other).is_file()


def test_memory_stays_flat(tmp_path, monkeypatch):
    n, dim = 100_000, 32  # 12.8 MB of float32, 40 MB as text

    def blocks(block_rows):
        rng = np.random.default_rng(0)
        for start in range(0, n, block_rows):
            rows = min(block_rows, n - start)
            yield (
                [f"c{start + i}" for i in range(rows)],
                rng.normal(size=(rows, dim)).astype(np.float32),
            )

    source = LatentSource(tmp_path, "embeddings", n, dim, "", blocks)
    monkeypatch.setattr(latent, "BLOCK_BYTES", 256 << 10)
    for fmt in ("npz", "tsv"):
        tracemalloc.start()
        export_latent(source, tmp_path / f"out.{fmt}", fmt, {"command": ["test"]})
        _, peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        assert peak < 3 << 20, (fmt, peak)  # a block of rows and its text, not the matrix
    assert read_vamb(tmp_path / "out.npz").shape == (n, dim)
    assert (tmp_path / "out.tsv").read_text().count("\n") == n + 1


def test_a_failed_export_leaves_nothing(data, tmp_path, monkeypatch):
    source = open_latent_source(data["emb"])

    def broken(block_rows):
        yield data["ids"][:10], data["x"][:10]
        raise InputError("disk gone")

    source.blocks = broken
    for fmt in ("npz", "tsv"):
        with pytest.raises(InputError, match="disk gone"):
            export_latent(source, tmp_path / f"x.{fmt}", fmt, {})
    assert list(tmp_path.iterdir()) == []


def test_kind_and_format_must_agree(data, tmp_path, capsys):
    model, _ = write_model(tmp_path / "model")
    cases = [
        ([str(model), "-o", str(tmp_path / "m.npz")], "a model exports to ONNX"),
        ([str(data["emb"]), "-o", str(tmp_path / "e.onnx")], "embeddings export to .npz or .tsv"),
        ([str(data["emb"]), "-o", str(tmp_path / "e.bin")], "cannot tell the format"),
        ([str(tmp_path / "none"), "-o", str(tmp_path / "e.npz")], "no such model"),
        ([str(tmp_path), "-o", str(tmp_path / "e.npz")], "not a model (folder or .pt)"),
    ]
    for argv, needle in cases:
        assert main(["export", *argv]) == 1
        err = capsys.readouterr().err.strip()
        assert needle in err and "\n" not in err, err
    names = tmp_path / "e.names.txt"
    names.write_text("mine")
    assert main(["export", str(data["emb"]), "-o", str(tmp_path / "e.npz")]) == 1
    assert "e.names.txt already exists" in capsys.readouterr().err
    assert names.read_text() == "mine"
