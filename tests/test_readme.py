"""Every command in the README's ``bash`` blocks runs.

The blocks are read from README.md and run in order, each through ``bash -euo pipefail``,
in one temporary folder, with this environment's ``kmervae`` first on PATH. The inputs the
README names (``assemblies/*.fa.gz``, ``refs/*.fa.gz``, ``samples.tsv``, ``new.fa``) are
written by the test: about a thousand contigs cut from ``tests/data/fragments.fa``. The
README's sizes are those of a real study; :data:`SUBSTITUTIONS` brings them down to the
test's, in plain sight.

A block preceded by ``<!-- test: skip (reason) -->`` is not run (installs, a Dask
scheduler): only blocks that cannot run in CI may carry it. Every command line, skipped or
not, is still parsed by kmervae's own parser, so a wrong option anywhere fails here.
"""

from __future__ import annotations

import contextlib
import gzip
import io
import os
import re
import shlex
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from kmervae.cli import build_parser

ROOT = Path(__file__).resolve().parents[1]
README = ROOT / "README.md"
FRAGMENTS = Path(__file__).resolve().parent / "data" / "fragments.fa"

#: README text -> the text the test runs instead. The README's commands are sized for
#: 10 M contigs on a GPU; the test has about a thousand contigs and a CPU. Every entry must be
#: used by some block (test_every_substitution_is_used), so the table cannot rot.
SUBSTITUTIONS = {
    # CI has no GPU
    "--device cuda": "--device cpu",
    'device = "cuda"': 'device = "cpu"',
    # 500 epochs of the reference model -> 2 of a tiny one, in batches of 64 (the test's
    # rows are fewer than one batch of the default 1024), on one thread (two threads of so
    # small a model mostly wait for each other, the more so on a busy machine)
    "--epochs 500": "--epochs 2 --batch-size 64 --hidden 64 --latent 8 -t 1",
    "epochs = 500": 'epochs = 2\nbatch_size = 64\nhidden = "64"\nlatent = 8\nthreads = 1',
    # the demo at its small size, one epoch
    "kmervae demo -o demo": "kmervae demo -o demo --size small --epochs 1",
    # t-SNE: a few iterations, and a small picture
    "-o samples.map": "-o samples.map --n-iter 100 --early-iter 50 --dpi 50",
    # the same for the pipeline's map (a section added after the README's [train])
    'schedule = "cosine"\n': 'schedule = "cosine"\n\n[map]\nn_iter = 100\nearly_iter = 50\n',
    # small figures, PNG only
    "-o marine_vs_freshwater": "-o marine_vs_freshwater --format png --dpi 50 --bins 50",
}

#: samples of the mock study: file stem, group (as the README's compare and samples.tsv)
SAMPLES = (
    ("marine_1", "marine"),
    ("marine_2", "marine"),
    ("lake_1", "freshwater"),
    ("lake_2", "freshwater"),
)
#: contigs per sample: the 10 % held out for validation must hold 100 queries and their
#: 50 neighbours (fidelity)
CONTIGS_PER_SAMPLE = 260

#: what the README says its commands leave behind
EXPECTED_OUTPUTS = (
    "demo/report.html",
    "refs.tsv",
    "train_set.train/manifest.json",
    "run1/model/config.json",
    "encoder.onnx",
    "samples.store/manifest.json",
    "samples.knn/indices.npy",
    "clusters/clusters.tsv",
    "samples.map/map.png",
    "quality.json",
    "report.html",
    "run/report.html",
    "all_samples.kmv/manifest.json",
    "hits.tsv",
    "mcl/clusters.tsv",
)

SKIP_MARK = re.compile(r"^<!--\s*test:\s*skip\s*\((?P<reason>[^)]+)\)\s*-->$")


@dataclass(frozen=True)
class Block:
    """One ``bash`` code block of the README."""

    line: int  # 1-based line of its opening fence
    text: str
    skip: str | None  # the reason, for a block marked to be skipped

    def substituted(self) -> str:
        text = self.text
        for old, new in SUBSTITUTIONS.items():
            text = text.replace(old, new)
        return text


def readme_blocks() -> list[Block]:
    """The README's ``bash`` blocks, in order, each with the skip mark before it (if any)."""
    lines = README.read_text().splitlines()
    blocks = []
    i = 0
    while i < len(lines):
        if lines[i].strip() == "```bash":
            start = i
            body = []
            i += 1
            while lines[i].strip() != "```":
                body.append(lines[i])
                i += 1
            before = next((line.strip() for line in reversed(lines[:start]) if line.strip()), "")
            mark = SKIP_MARK.match(before)
            blocks.append(
                Block(start + 1, "\n".join(body) + "\n", mark.group("reason") if mark else None)
            )
        i += 1
    return blocks


def command_lines(script: str) -> list[list[str]]:
    """The ``kmervae`` commands of a shell script, as argument lists (continuation lines
    joined, comments dropped, here-documents left out)."""
    commands = []
    joined = script.replace("\\\n", " ")
    heredoc_end = None
    for line in joined.splitlines():
        if heredoc_end is not None:
            if line.strip() == heredoc_end:
                heredoc_end = None
            continue
        here = re.search(r"<<-?\s*'?\"?(\w+)", line)
        if here:
            heredoc_end = here.group(1)
        words = shlex.split(line, comments=True)
        if words and words[0] == "kmervae":
            commands.append(words)
    return commands


def readme_subcommands() -> set[str]:
    """Every ``kmervae SUBCOMMAND`` named in the README's code (blocks and inline)."""
    text = README.read_text()
    code = re.findall(r"```.*?```", text, flags=re.S) + re.findall(r"`[^`\n]+`", text)
    return {m for span in code for m in re.findall(r"\bkmervae ([a-z][a-z-]*)\b", span)}


def test_the_readme_has_blocks_and_skips_only_what_ci_cannot_run():
    blocks = readme_blocks()
    assert len(blocks) >= 10
    assert sum(block.skip is None for block in blocks) >= 8
    for block in blocks:
        if block.skip is not None:
            # installs and a remote scheduler: nothing else is allowed to be skipped
            assert re.search(r"install|Dask scheduler", block.skip), (block.line, block.skip)


def test_every_substitution_is_used():
    texts = [block.text for block in readme_blocks()]
    unused = [old for old in SUBSTITUTIONS if not any(old in text for text in texts)]
    assert unused == [], f"substitutions that no README block uses: {unused}"


def test_every_subcommand_the_readme_names_exists():
    names = readme_subcommands()
    assert {"demo", "pipeline", "report", "profile", "train", "embed"} <= names
    failed = {}
    for name in sorted(names):
        with (
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()) as err,
        ):
            try:
                build_parser().parse_args([name, "--help"])
            except SystemExit as exc:
                if exc.code != 0:
                    failed[name] = err.getvalue().strip().splitlines()[-1:]
                continue
        failed[name] = ["--help did not exit"]
    assert failed == {}, f"kmervae SUBCOMMAND --help failed: {failed}"


def test_every_readme_command_line_parses():
    """Skipped blocks included, after the substitutions (which must parse too)."""
    failed = []
    count = 0
    for block in readme_blocks():
        for words in command_lines(block.substituted()):
            count += 1
            with contextlib.redirect_stderr(io.StringIO()) as err:
                try:
                    build_parser().parse_args(words[1:])
                except SystemExit:
                    message = err.getvalue().strip().splitlines()[-1:]
                    failed.append(f"README line {block.line}: {shlex.join(words)}: {message}")
    assert count >= 25
    assert failed == [], "\n".join(failed)


# ------------------------------------------------------------------------ the run


def read_fragments() -> dict[str, str]:
    records: dict[str, list[str]] = {}
    for line in FRAGMENTS.read_text().splitlines():
        if line.startswith(">"):
            name = line[1:].split()[0]
            records[name] = []
        elif line.strip():
            records[name].append(line.strip())
    return {name: "".join(parts) for name, parts in records.items()}


def write_inputs(folder: Path) -> None:
    """The files the README's workflow starts from, at a tiny size: four assemblies of
    contigs cut (2-8 kbp, 5 % of bases changed) from the fixture fragments, two reference
    "genomes", the samples table and a few new sequences."""
    fragments = read_fragments()
    names = sorted(fragments)
    rng = np.random.default_rng(7)

    def contig() -> str:
        source = fragments[names[int(rng.integers(len(names)))]]
        length = int(rng.integers(2000, min(8000, len(source)) + 1))
        start = int(rng.integers(0, len(source) - length + 1))
        seq = np.frombuffer(source[start : start + length].encode(), dtype=np.uint8).copy()
        changed = rng.random(length) < 0.05
        seq[changed] = np.frombuffer(b"ACGT", dtype=np.uint8)[rng.integers(0, 4, changed.sum())]
        return seq.tobytes().decode()

    (folder / "assemblies").mkdir()
    table = ["contig\tsample\tgroup"]
    for sample, group in SAMPLES:
        with gzip.open(folder / "assemblies" / f"{sample}.fa.gz", "wt") as fh:
            for i in range(1, CONTIGS_PER_SAMPLE + 1):
                fh.write(f">contig_{i}\n{contig()}\n")
                table.append(f"{sample}_contig_{i}\t{sample}\t{group}")
    (folder / "samples.tsv").write_text("\n".join(table) + "\n")
    (folder / "refs").mkdir()
    alteromonas = [name for name in names if name.startswith("TARA_")]
    mers = [name for name in names if name not in alteromonas]
    for stem, records in (("Alteromonas_macleodii", alteromonas), ("MERS_coronavirus", mers)):
        with gzip.open(folder / "refs" / f"{stem}.fa.gz", "wt") as fh:
            for name in records:
                fh.write(f">{name}\n{fragments[name]}\n")
    with open(folder / "new.fa", "w") as fh:
        for i in range(1, 4):
            fh.write(f">new_{i}\n{contig()}\n")


def test_every_readme_command_runs(tmp_path):
    """The README's blocks, in order, in one folder; a failed block does not stop the ones
    after it (those that need its outputs fail too, and are listed after it)."""
    bin_dir = Path(sys.executable).parent
    if not (bin_dir / "kmervae").exists():
        pytest.fail(f"no kmervae console script beside {sys.executable}")
    write_inputs(tmp_path)
    env = dict(os.environ, PATH=f"{bin_dir}{os.pathsep}{os.environ.get('PATH', '')}")
    env.pop("PYTHONPATH", None)
    failed = []
    for block in readme_blocks():
        if block.skip is not None:
            continue
        script = tmp_path / f".readme_block_{block.line}.sh"
        script.write_text(block.substituted())
        done = subprocess.run(
            ["bash", "-euo", "pipefail", str(script)],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        if done.returncode != 0:
            tail = "\n".join(done.stderr.strip().splitlines()[-5:])
            failed.append(f"README line {block.line} (exit {done.returncode}):\n{tail}")
    missing = [name for name in EXPECTED_OUTPUTS if not (tmp_path / name).exists()]
    assert failed == [], "\n\n".join(failed)
    assert missing == [], f"outputs the README promises are missing: {missing}"
