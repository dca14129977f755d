"""``kmervae chop``: pieces, ids, seeds, table, gzip output."""

from __future__ import annotations

import gzip
import itertools
import os
from pathlib import Path

import numpy as np
import pytest
from conftest import random_fasta

from kmervae.cli import main
from kmervae.errors import KmervaeError
from kmervae.io.chop import ChopSpec, chop_sequence
from kmervae.io.fasta import read_fasta_records


def _records(path):
    return [(i, s.decode()) for i, _, s in read_fasta_records(path)]


def test_fixed_length_pieces_tile_each_record(tmp_path):
    genome = tmp_path / "g.fa"
    records = random_fasta(genome, n=3, min_len=2500, max_len=9000)
    out = tmp_path / "c.fa"
    table = tmp_path / "c.tsv"
    assert (
        main(
            [
                "chop",
                str(genome),
                "-o",
                str(out),
                "-l",
                "1000",
                "--min-length",
                "300",
                "--table",
                str(table),
                "-q",
            ]
        )
        == 0
    )
    got = _records(out)
    for rid, seq in records.items():
        pieces = [(i, s) for i, s in got if i.rsplit(".", 1)[0] == rid]
        assert [i for i, _ in pieces] == [f"{rid}.{n}" for n in range(1, len(pieces) + 1)]
        joined = "".join(s for _, s in pieces)
        tail = len(seq) % 1000
        expected = seq if tail >= 300 or tail == 0 else seq[: len(seq) - tail]
        assert joined == expected
        assert all(len(s) == 1000 for _, s in pieces[:-1])
    rows = table.read_text().splitlines()
    assert rows[0].split("\t") == ["contig_id", "file", "record", "start", "end", "length"]
    first = rows[1].split("\t")
    assert first[:4] == ["contig_0.1", "g.fa", "contig_0", "0"] and first[5] == "1000"


def test_random_lengths_are_seeded_and_in_range(tmp_path):
    genome = tmp_path / "g.fa"
    random_fasta(genome, n=4, min_len=20000, max_len=40000)
    outs = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        out = tmp_path / f"{name}.fa"
        assert (
            main(
                ["chop", str(genome), "-o", str(out), "-l", "2000-5000", "--seed", str(seed), "-q"]
            )
            == 0
        )
        outs.append(_records(out))
    assert outs[0] == outs[1] != outs[2]
    assert all(2000 <= len(s) <= 5000 for _, s in outs[0])


def test_gzip_output_and_prefix(tmp_path):
    a, b = tmp_path / "a.fa", tmp_path / "b.fa.gz"
    random_fasta(a, n=2, min_len=3000, max_len=4000)
    b.write_bytes(gzip.compress(a.read_bytes()))
    out = tmp_path / "c.fa.gz"
    # the same record ids in two files need --prefix-ids
    assert main(["chop", str(a), str(b), "-o", str(out), "-l", "1000", "-q"]) == 1
    assert not out.exists()
    assert main(["chop", str(a), str(b), "-o", str(out), "-l", "1000", "--prefix-ids", "-q"]) == 0
    assert out.read_bytes()[:2] == b"\x1f\x8b"
    ids = [i for i, _ in _records(out)]
    assert ids[0] == "a_contig_0.1" and any(i.startswith("b_contig_1.") for i in ids)


def test_chop_sequence_never_emits_short_pieces():
    rng = np.random.default_rng(0)
    spec = ChopSpec(100, 300, 80)
    pieces = list(chop_sequence(b"A" * 10_007, spec, rng))
    assert pieces[0][0] == 0
    assert all(100 <= e - s <= 300 for s, e in pieces[:-1]) and pieces[-1][1] - pieces[-1][0] >= 80
    assert all(a[1] == b[0] for a, b in itertools.pairwise(pieces))
    assert pieces[-1][1] >= 10_007 - 80
    with pytest.raises(KmervaeError, match="min_keep"):
        ChopSpec(100, 300, 150)


@pytest.mark.parametrize("length", ["0", "500-100", "abc"])
def test_bad_lengths(tmp_path, length, capsys):
    genome = tmp_path / "g.fa"
    random_fasta(genome, n=1)
    code = 0
    try:
        code = main(["chop", str(genome), "-o", str(tmp_path / "o.fa"), "-l", length, "-q"])
    except SystemExit as exc:  # argparse usage error
        code = int(exc.code or 0)
    assert code != 0
    assert not (tmp_path / "o.fa").exists()


def test_not_fasta(tmp_path, capsys):
    bad = tmp_path / "r.fq"
    bad.write_text("@r\nACGT\n+\nIIII\n")
    assert main(["chop", str(bad), "-o", str(tmp_path / "o.fa"), "-q"]) == 1
    assert "FASTQ" in capsys.readouterr().err


def test_output_to_dev_null(tmp_path):
    genome = tmp_path / "g.fa"
    random_fasta(genome, n=2, min_len=3000, max_len=4000)
    table = tmp_path / "c.tsv"
    argv = ["chop", str(genome), "-o", os.devnull, "-l", "1000", "--table", str(table), "-q"]
    assert main(argv) == 0
    assert Path(os.devnull).is_char_device() and len(table.read_text().splitlines()) > 4
    assert not any(p.name.startswith(".null") for p in Path(os.devnull).parent.iterdir())
