"""``kmervae profile`` and ``kmervae chop`` on hostile inputs and options, interrupted and
killed: one error line naming the file (and record), nothing left under a final name, and
after a kill a rerun that gives exactly what an uninterrupted run gives."""

from __future__ import annotations

import bz2
import gzip
import lzma
import os
import random
import signal
import subprocess
import time
from pathlib import Path

import numpy as np
import pytest
import zstandard
from conftest import random_fasta
from hostile import (
    assert_clean,
    assert_refused,
    check_interrupted,
    kmervae_process,
    leftovers,
    read_only_folder,
    run_cli,
    small_disk,
    stopped_then_rerun,
)

from kmervae import open_dataset
from kmervae.io.fasta import read_fasta_records

COMMANDS = {
    "profile": lambda src, out: ["profile", src, "-o", out, "-q"],
    "chop": lambda src, out: ["chop", src, "-o", out, "-l", "10", "-q"],
}
OUTPUT_NAME = {"profile": "out", "chop": "out.fa"}

GOOD = b">a desc\nACGTACGTTTGA\nGGCCnnAATT\n>b\nTTTTACGATTGCA\n"
GOOD_RECORDS = [("a", "ACGTACGTTTGAGGCCnnAATT"), ("b", "TTTTACGATTGCA")]


def _truncated_gzip() -> bytes:
    seq = np.random.default_rng(0).choice(np.frombuffer(b"ACGT", np.uint8), 200_000).tobytes()
    return gzip.compress(b">a\n" + seq + b"\n")[:20_000]


# name: (file name, content (None: a folder; missing: not created), words of the error line)
REFUSED: dict[str, tuple[str, bytes | str | None, tuple[str, ...]]] = {
    "empty": ("empty.fa", b"", ("empty file",)),
    "blank": ("blank.fa", b"\n \r\n\t\n", ("no FASTA records",)),
    "truncated-gzip": ("cut.fa.gz", _truncated_gzip(), ("truncated gzip",)),
    "corrupt-gzip": ("bad.fa.gz", b"\x1f\x8b\x08\x00" + bytes(range(200)), ("gzip",)),
    "fastq": ("reads.fq", b"@r1\nACGT\n+\nIIII\n", ("FASTQ",)),
    "genbank": ("g.gb", b"LOCUS       NC_000913   4641652 bp\nORIGIN\n", ("not FASTA", "LOCUS")),
    "binary": ("junk.fa", bytes(range(256)) * 8, ("binary",)),
    "text-first": ("t.fa", b"ACGT\n>a\nACGT\n", ("not FASTA",)),
    "empty-id": ("noid.fa", b">a\nACGTACGT\n>\nACGT\n", ("record 2", "empty id")),
    "bad-utf8-id": ("u.fa", b">a\nACGTACGT\n>b\xff\xfe x\nACGT\n", ("record 2", "UTF-8")),
    "duplicate-ids": ("dup.fa", b">a\nACGTACGTAA\n>b\nACGTACGTAA\n>a\nACGTACGTAA\n", ("'a'",)),
    "directory": ("folder.fa", None, ("is a directory",)),
    "missing": ("missing.fa", "missing", ("no such file",)),
}


@pytest.mark.bad_input
@pytest.mark.parametrize("case", sorted(REFUSED))
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_bad_inputs_are_refused_in_one_line(tmp_path, capsys, command, case):
    name, content, needles = REFUSED[case]
    src = tmp_path / name
    if content is None:
        src.mkdir()
    elif isinstance(content, bytes):
        src.write_bytes(content)
    out = tmp_path / OUTPUT_NAME[command]
    assert_refused(COMMANDS[command](src, out), capsys, name, *needles, code=1)
    assert_clean(tmp_path, out)


@pytest.mark.bad_input
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_unreadable_input(tmp_path, capsys, command):
    if os.geteuid() == 0:
        pytest.skip("root reads every file")
    src = tmp_path / "locked.fa"
    src.write_bytes(GOOD)
    src.chmod(0)
    out = tmp_path / OUTPUT_NAME[command]
    assert_refused(COMMANDS[command](src, out), capsys, "locked.fa", "permission denied")
    assert_clean(tmp_path, out)


def _packed(text: bytes, how: str) -> bytes:
    return {
        "gz-plain": lambda b: b,
        "bz2-named-gz": bz2.compress,
        "xz": lzma.compress,
        "zstd": lambda b: zstandard.ZstdCompressor().compress(b),
    }[how](text)


LONG_HEADER = b">long " + b"d" * 100_000
# name: (file name, content, expected (id, sequence) records)
ACCEPTED: dict[str, tuple[str, bytes, list[tuple[str, str]]]] = {
    "crlf": ("crlf.fa", GOOD.replace(b"\n", b"\r\n"), GOOD_RECORDS),
    "cr-only": ("mac.fa", GOOD.replace(b"\n", b"\r"), GOOD_RECORDS),
    "mixed-ends": (
        "mixed.fa",
        b">a desc\r\nACGTACGTTTGA\rGGCCnnAATT\n>b\rTTTTACGATTGCA\r\n",
        GOOD_RECORDS,
    ),
    "unicode-header": (
        "uni.fa",
        ">contig_é Escherichia cœli ✓\nACGTACGTAAGG\n".encode(),
        [("contig_é", "ACGTACGTAAGG")],
    ),
    "long-header": ("long.fa", LONG_HEADER + b"\nACGTACGTAAGG\n", [("long", "ACGTACGTAAGG")]),
    "no-sequence": ("nos.fa", b">a\n>b\nACGTACGTAAGG\n>c", [("a", ""), ("b", "ACGTACGTAAGG")]),
    "gz-name-plain": ("plain.fa.gz", _packed(GOOD, "gz-plain"), GOOD_RECORDS),
    "bz2-named-gz": ("bz.fa.gz", _packed(GOOD, "bz2-named-gz"), GOOD_RECORDS),
    "xz": ("x.fa.xz", _packed(GOOD, "xz"), GOOD_RECORDS),
    "zstd": ("z.fa.zst", _packed(GOOD, "zstd"), GOOD_RECORDS),
}


@pytest.mark.bad_input
@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_odd_inputs_profile_correctly(tmp_path, capsys, case):
    name, content, records = ACCEPTED[case]
    if case == "no-sequence":
        records = [*records, ("c", "")]
    src = tmp_path / name
    src.write_bytes(content)
    out = tmp_path / "out"
    code, err = run_cli(COMMANDS["profile"](src, out), capsys)
    assert code == 0, err
    ds = open_dataset(out)
    assert ds.ids() == [ident for ident, _ in records]
    assert ds.lengths().tolist() == [len(seq) for _, seq in records]
    assert ds.ambiguous().tolist() == [seq.upper().count("N") for _, seq in records]
    assert_clean(tmp_path)


@pytest.mark.bad_input
@pytest.mark.parametrize("case", sorted(ACCEPTED))
def test_odd_inputs_chop_correctly(tmp_path, capsys, case):
    name, content, records = ACCEPTED[case]
    src = tmp_path / name
    src.write_bytes(content)
    out = tmp_path / "out.fa"
    code, err = run_cli(["chop", src, "-o", out, "-l", "5", "--min-length", "1", "-q"], capsys)
    assert code == 0, err
    pieces = [(i, s.decode()) for i, _, s in read_fasta_records(out)]
    for ident, seq in records:
        mine = [s for i, s in pieces if i.rsplit(".", 1)[0] == ident]
        assert "".join(mine) == seq
    assert_clean(tmp_path)


# --- options ---------------------------------------------------------------------------------

BAD_OPTIONS = [
    ("profile", ["--threads", "-1"], "--threads"),
    ("profile", ["--threads", "5000"], "--threads"),
    ("profile", ["--threads", "two"], "--threads"),
    ("profile", ["--min-length", "-1"], "--min-length"),
    ("profile", ["--min-length", "1.5"], "--min-length"),
    ("chop", ["--line-width", "-1"], "--line-width"),
    ("chop", ["--seed", "-1"], "--seed"),
    ("chop", ["--seed", str(2**32)], "--seed"),
    ("chop", ["-l", "0"], "--length"),
    ("chop", ["-l", "500-100"], "--length"),
    ("chop", ["-l", "-5"], "--length"),
    ("chop", ["--min-length", "0"], "--min-length"),
    ("chop", ["--min-length", "-3"], "--min-length"),
]


@pytest.mark.bad_input
@pytest.mark.parametrize(("command", "options", "needle"), BAD_OPTIONS)
def test_numeric_options_out_of_range(tmp_path, capsys, command, options, needle):
    src = tmp_path / "g.fa"
    src.write_bytes(GOOD)
    out = tmp_path / OUTPUT_NAME[command]
    argv = [command, src, "-o", out, *options, "-q"]
    assert_refused(argv, capsys, needle, code=2)
    assert_clean(tmp_path, out)


@pytest.mark.bad_input
def test_chop_min_length_above_the_contig_length(tmp_path, capsys):
    src = tmp_path / "g.fa"
    src.write_bytes(GOOD)
    argv = ["chop", src, "-o", tmp_path / "o.fa", "-l", "10", "--min-length", "20"]
    assert_refused(argv, capsys, "--min-length")
    assert_clean(tmp_path, tmp_path / "o.fa")


# --- outputs -------------------------------------------------------------------------------


@pytest.mark.bad_input
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_existing_output_is_refused_and_kept(tmp_path, capsys, command):
    src = tmp_path / "g.fa"
    src.write_bytes(GOOD)
    out = tmp_path / OUTPUT_NAME[command]
    out.write_text("keep me")
    assert_refused(COMMANDS[command](src, out), capsys, "already exists", "--force")
    assert out.read_text() == "keep me"
    assert_clean(tmp_path)


@pytest.mark.bad_input
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_missing_output_folder(tmp_path, capsys, command):
    src = tmp_path / "g.fa"
    src.write_bytes(GOOD)
    out = tmp_path / "nowhere" / OUTPUT_NAME[command]
    assert_refused(COMMANDS[command](src, out), capsys, "nowhere", "does not exist")
    assert_clean(tmp_path, out.parent)


@pytest.mark.bad_input
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_read_only_output_folder(tmp_path, capsys, command):
    src = tmp_path / "g.fa"
    src.write_bytes(GOOD)
    with read_only_folder(tmp_path) as folder:
        out = folder / OUTPUT_NAME[command]
        assert_refused(COMMANDS[command](src, out), capsys, str(folder), "not writable")
        assert not list(folder.iterdir())


@pytest.mark.bad_input
@pytest.mark.parametrize(
    ("command", "fmt"), [("profile", "native"), ("profile", "legacy"), ("chop", None)]
)
def test_full_disk(tmp_path, capsys, command, fmt):
    src = tmp_path / "g.fa"
    random_fasta(src, n=300, min_len=2000, max_len=3000)
    with small_disk(tmp_path, "256k") as disk:
        out = disk / OUTPUT_NAME[command]
        argv = COMMANDS[command](src, out) + (["--format", fmt] if fmt else [])
        assert_refused(argv, capsys, str(out), "no space left")
        assert not list(disk.iterdir())


# --- interruptions -------------------------------------------------------------------------


def _wait_for_temporary(proc: subprocess.Popen[str], out: Path, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not list(out.parent.glob(f".{out.name}.tmp-{proc.pid}*")):
        assert proc.poll() is None, proc.communicate()[1]
        assert time.monotonic() < deadline, "the command never started its output"
        time.sleep(0.02)


@pytest.mark.kill_point
@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_signal_on_a_stalled_stdin_pipe(tmp_path, command, sig):
    """A producer wrote part of a file and waits: the signal still ends the command at once
    with one line, and nothing is left."""
    out = tmp_path / OUTPUT_NAME[command]
    proc = kmervae_process(COMMANDS[command]("-", out), stdin=subprocess.PIPE, cwd=tmp_path)
    assert proc.stdin is not None
    try:
        # more than one read buffer, less than a block: the readers wait inside a record
        proc.stdin.write(">a\nACGTACGT\n>b\n" + "ACGT" * 400_000)
        proc.stdin.flush()
        _wait_for_temporary(proc, out)
        time.sleep(0.5)
        proc.send_signal(sig)
        started = time.monotonic()
        _, err = proc.communicate(timeout=10)
        assert time.monotonic() - started < 5
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert check_interrupted(proc.returncode, err, sig, command)
    assert len(err.strip().splitlines()) == 1, err
    assert_clean(tmp_path, out)


def _dataset_bytes(path: Path, fmt: str) -> dict[str, bytes]:
    """The data files of a profile output (not the manifest or log: they hold times)."""
    if fmt == "legacy":
        return {s: path.with_suffix(s).read_bytes() for s in (".npy", ".txt")}
    names = ("features.npy", "lengths.npy", "gc.npy", "ambiguous.npy", "sources.npy", "ids.txt")
    return {name: (path / name).read_bytes() for name in names}


def run_cli_plain(argv: list[object]) -> int:
    from kmervae.cli import main

    return main([str(a) for a in argv])


@pytest.fixture(scope="module")
def kill_input(tmp_path_factory) -> tuple[Path, dict[str, dict[str, bytes]]]:
    """A FASTA of a few megabytes (two read blocks) and its uninterrupted profiles."""
    folder = tmp_path_factory.mktemp("kill")
    src = folder / "g.fa"
    random_fasta(src, n=1500, min_len=2000, max_len=4500)
    expected = {}
    for fmt in ("native", "legacy"):
        out = folder / f"ref-{fmt}"
        assert run_cli_plain(["profile", src, "-o", out, "-q", "--format", fmt]) == 0
        expected[fmt] = _dataset_bytes(out.with_suffix(".npy") if fmt == "legacy" else out, fmt)
    return src, expected


@pytest.mark.kill_point
@pytest.mark.parametrize(
    ("fmt", "fed"),
    [("native", 0.0), ("native", 0.6), ("native", 1.0), ("legacy", 0.6)],
)
def test_sigkill_then_rerun_gives_the_uninterrupted_result(tmp_path, kill_input, fmt, fed):
    """kill -9 while part of the input has been read (fed through stdin), then the same
    command on the file: no leftovers, and the data of an uninterrupted run, byte for byte."""
    src, expected = kill_input
    out = tmp_path / "out"
    final = out.with_suffix(".npy") if fmt == "legacy" else out
    argv = ["profile", "-", "-o", out, "-q", "--format", fmt]
    proc = kmervae_process(argv, stdin=subprocess.PIPE, cwd=tmp_path)
    assert proc.stdin is not None
    text = src.read_text()
    rng = random.Random(f"{fmt}{fed}")
    try:
        _wait_for_temporary(proc, final)
        proc.stdin.write(text[: int(len(text) * fed)])
        proc.stdin.flush()
        time.sleep(rng.uniform(0.05, 0.3))
        proc.kill()
        proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == -signal.SIGKILL
    assert leftovers(tmp_path)  # what a kill -9 leaves
    assert not final.exists()
    assert run_cli_plain(["profile", src, "-o", out, "-q", "--format", fmt]) == 0
    assert _dataset_bytes(final, fmt) == expected[fmt]
    assert_clean(tmp_path)


@pytest.mark.kill_point
@pytest.mark.parametrize(
    ("sig", "seed"),
    [(signal.SIGKILL, 1), (signal.SIGKILL, 2), (signal.SIGTERM, 3), (signal.SIGINT, 4)],
    ids=["SIGKILL-1", "SIGKILL-2", "SIGTERM", "SIGINT"],
)
def test_stopped_at_a_random_time_of_a_file_run(tmp_path, kill_input, sig, seed):
    """Stopped at a random time, then rerun: SIGINT and SIGTERM leave nothing, kill -9's
    leftovers go with the rerun, and the rerun's data are those of an uninterrupted run."""
    src, expected = kill_input
    out = tmp_path / "out"
    after = random.Random(seed).uniform(0.0, 0.4)

    def same(path: Path) -> None:
        assert _dataset_bytes(path, "native") == expected["native"]

    stopped_then_rerun(["profile", src, "-o", out, "-t", "2"], out, sig, after, same)


@pytest.mark.kill_point
def test_chop_sigkill_then_rerun(tmp_path, kill_input):
    src, _ = kill_input
    argv = ["chop", src, "-o", tmp_path / "ref.fa.gz", "-l", "300-900", "-q"]
    assert run_cli_plain(argv) == 0
    expected = gzip.decompress((tmp_path / "ref.fa.gz").read_bytes())
    out = tmp_path / "out.fa.gz"
    after = random.Random(3).uniform(0.0, 0.3)

    def same(path: Path) -> None:
        assert gzip.decompress(path.read_bytes()) == expected

    argv = ["chop", src, "-o", out, "-l", "300-900"]
    stopped_then_rerun(argv, out, signal.SIGKILL, after, same)


# --- reproducibility -------------------------------------------------------------------------


def test_threads_and_block_sizes_give_byte_identical_outputs(tmp_path, monkeypatch):
    src = tmp_path / "g.fa"
    random_fasta(src, n=150, min_len=500, max_len=4000)
    outputs = []
    for threads, block in ((1, None), (1, 1 << 14), (2, 1 << 14), (2, 1 << 14), (2, 1 << 12)):
        if block is not None:
            monkeypatch.setattr("kmervae.io.fasta.BLOCK_SIZE", block)
        out = tmp_path / f"t{threads}-{block}-{len(outputs)}"
        assert run_cli_plain(["profile", src, "-o", out, "-q", "-t", threads]) == 0
        outputs.append(_dataset_bytes(out, "native"))
    assert all(o == outputs[0] for o in outputs[1:])
    ds = open_dataset(tmp_path / "t1-None-0")
    assert ds.n_rows == 150
