"""``kmervae profile`` end to end, in-process."""

from __future__ import annotations

import gzip
import json

import numpy as np
import pytest
from conftest import random_fasta
from naive_kmers import naive_profile

from kmervae import open_dataset
from kmervae.cli import main


def test_profile_native(tmp_path, capsys):
    fasta = tmp_path / "sample.fa"
    records = random_fasta(fasta, n=12)
    out = tmp_path / "prof"
    assert main(["profile", str(fasta), "-o", str(out), "-q"]) == 0
    ds = open_dataset(out)
    assert ds.kind == "native" and ds.n_rows == 12
    assert ds.ids() == list(records)
    ds.verify_ids()
    for i, seq in enumerate(records.values()):
        np.testing.assert_allclose(ds.features[i], naive_profile(seq), rtol=1e-6, atol=1e-7)
        assert ds.lengths()[i] == len(seq)
        assert ds.ambiguous()[i] == seq.upper().count("N")
        acgt = [c for c in seq.upper() if c in "ACGT"]
        assert ds.gc()[i] == pytest.approx(sum(c in "GC" for c in acgt) / len(acgt), rel=1e-6)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["sources"][0]["records"] == 12
    assert len(manifest["sources"][0]["sha256"]) == 64
    assert manifest["provenance"]["command"][:2] == ["kmervae", "profile"]
    log = (out / "kmervae.log").read_text()
    assert "command: kmervae profile" in log and "records" in log
    assert not list(tmp_path.glob(".*"))  # no temporary leftovers


def test_threads_float16_legacy_and_min_length_agree(tmp_path):
    fasta = tmp_path / "s.fa"
    random_fasta(fasta, n=40, max_len=4000)
    base = tmp_path / "a"
    assert main(["profile", str(fasta), "-o", str(base), "-q"]) == 0
    ref = open_dataset(base)
    assert main(["profile", str(fasta), "-o", str(tmp_path / "t"), "-t", "2", "-q"]) == 0
    np.testing.assert_array_equal(open_dataset(tmp_path / "t").features, ref.features)
    assert main(["profile", str(fasta), "-o", str(tmp_path / "h"), "--dtype", "float16", "-q"]) == 0
    half = open_dataset(tmp_path / "h")
    assert half.dtype == np.float16
    np.testing.assert_allclose(half.features, ref.features, atol=1e-3)
    assert (
        main(["profile", str(fasta), "-o", str(tmp_path / "leg"), "--format", "legacy", "-q"]) == 0
    )
    leg = open_dataset(tmp_path / "leg.npy")
    assert leg.kind == "legacy" and (tmp_path / "leg.txt").exists()
    raw = np.load(tmp_path / "leg.npy")
    assert raw.shape == (40, 2773) and raw.dtype == np.float32
    np.testing.assert_array_equal(raw[:, 0], ref.lengths().astype(np.float32))
    np.testing.assert_array_equal(raw[:, 1:], ref.features)
    assert leg.ids() == ref.ids()
    assert (
        main(["profile", str(fasta), "-o", str(tmp_path / "m"), "--min-length", "2000", "-q"]) == 0
    )
    kept = open_dataset(tmp_path / "m")
    assert kept.n_rows == int((ref.lengths() >= 2000).sum()) > 0
    assert kept.ids() == [i for i, n in zip(ref.ids(), ref.lengths(), strict=True) if n >= 2000]


def test_stdin_and_several_files(tmp_path, monkeypatch):
    a, b = tmp_path / "a.fa", tmp_path / "b.fa.gz"
    ra = random_fasta(a, n=3, seed=1)
    plain_b = tmp_path / "b_plain.fa"
    rb = random_fasta(plain_b, n=4, seed=2)
    b.write_bytes(gzip.compress(plain_b.read_bytes()))
    out = tmp_path / "o"
    # same ids in both files: refused without --prefix-ids
    assert main(["profile", str(a), str(b), "-o", str(out), "-q"]) == 1
    assert not out.exists()
    assert main(["profile", str(a), str(b), "-o", str(out), "-q", "--prefix-ids"]) == 0
    ds = open_dataset(out)
    assert ds.ids() == [f"a_{i}" for i in ra] + [f"b_{i}" for i in rb]
    assert ds.source_names == [str(a), str(b)]
    assert ds.sources().tolist() == [0] * 3 + [1] * 4

    class FakeStdin:
        buffer = open(a, "rb")  # noqa: SIM115

    monkeypatch.setattr("sys.stdin", FakeStdin)
    assert main(["profile", "-", "-o", str(tmp_path / "s"), "-q"]) == 0
    assert open_dataset(tmp_path / "s").ids() == list(ra)
    FakeStdin.buffer.close()


BAD = {
    "empty.fa": (b"", "empty file"),
    "reads.fq": (b"@r\nACGT\n+\nIIII\n", "FASTQ"),
    "binary.fa": (bytes(range(256)) * 8, "binary"),
    "noid.fa": (b">a\nACGTACGT\n>\nACGT\n", "record 2: header '>' with an empty id"),
    "dup.fa": (b">a\nACGTACGT\n>b\nAC\n>a\nACGT\n", "duplicate record id 'a'"),
    "truncated.fa.gz": (
        gzip.compress(
            b">a\n"
            + np.random.default_rng(0).choice(np.frombuffer(b"ACGT", np.uint8), 200_000).tobytes()
        )[:20_000],
        "truncated gzip",
    ),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_input_one_line_no_output(tmp_path, capsys, name):
    content, message = BAD[name]
    path = tmp_path / name
    path.write_bytes(content)
    out = tmp_path / "out"
    assert main(["profile", str(path), "-o", str(out), "-q"]) == 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and message in err[0] and name in err[0]
    assert "Traceback" not in err[0]
    assert not out.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == [name]


def test_accepted_oddities(tmp_path):
    path = tmp_path / "odd.fa"
    # CRLF, a header without sequence, a record shorter than 6 bp, an all-N record,
    # a last header without newline
    path.write_bytes(b">a x\r\nACGTAC\r\nGGTT\r\n>b\r\n>c\r\nACG\r\n>d\r\nNNNNNNNN\r\n>e")
    out = tmp_path / "o"
    assert main(["profile", str(path), "-o", str(out), "-q"]) == 0
    ds = open_dataset(out)
    assert ds.ids() == ["a", "b", "c", "d", "e"]
    assert ds.lengths().tolist() == [10, 0, 3, 8, 0]
    assert ds.ambiguous().tolist() == [0, 0, 0, 8, 0]
    np.testing.assert_allclose(ds.features[0], naive_profile("ACGTACGGTT"), rtol=1e-6)
    np.testing.assert_allclose(ds.features[2], naive_profile("ACG"), rtol=1e-6)
    assert not ds.features[1].any() and not ds.features[3].any()
    assert np.isnan(ds.gc()[3])


def test_existing_output_needs_force(tmp_path, capsys):
    fasta = tmp_path / "s.fa"
    random_fasta(fasta, n=2)
    out = tmp_path / "o"
    assert main(["profile", str(fasta), "-o", str(out), "-q"]) == 0
    assert main(["profile", str(fasta), "-o", str(out), "-q"]) == 1
    assert "--force" in capsys.readouterr().err
    assert main(["profile", str(fasta), "-o", str(out), "-q", "--force"]) == 0


def test_long_single_record(tmp_path):
    """A record far longer than a read block streams through in constant memory."""
    rng = np.random.default_rng(3)
    seq = rng.choice(np.frombuffer(b"ACGT", np.uint8), 12_000_000).tobytes()
    path = tmp_path / "big.fa"
    path.write_bytes(b">chr1\n" + seq + b"\n")
    out = tmp_path / "o"
    assert main(["profile", str(path), "-o", str(out), "-q"]) == 0
    ds = open_dataset(out)
    assert ds.lengths().tolist() == [12_000_000]
    counts = np.bincount(np.frombuffer(seq, np.uint8), minlength=256)
    gc = (counts[ord("G")] + counts[ord("C")]) / len(seq)
    assert ds.features[0, -1] == pytest.approx(gc, rel=1e-6)


def test_failed_legacy_run_leaves_nothing(tmp_path, capsys):
    path = tmp_path / "dup.fa"
    path.write_bytes(b">a\nACGTACGT\n>a\nACGT\n")
    assert (
        main(["profile", str(path), "-o", str(tmp_path / "leg"), "--format", "legacy", "-q"]) == 1
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dup.fa"]
    assert (
        main(
            [
                "profile",
                str(path),
                "-o",
                str(tmp_path / "leg"),
                "--format",
                "legacy",
                "--dtype",
                "float16",
                "-q",
            ]
        )
        == 1
    )
    assert "float32 only" in capsys.readouterr().err
