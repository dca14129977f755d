"""The inputs of ``kmervae demo``: a seeded mock metagenome cut from the genomes shipped in
``kmervae/demo/data``.

Four samples, two of group ``A`` and two of group ``B``, each a FASTA file of contigs of
2-10 kbp cut from the seven genomes (:func:`kmervae.io.chop.chop_sequence`: the cut points
of ``kmervae chop``). Each genome has its own coverage in each group (E. coli and H. pylori
abound in A; S. aureus, Oscillibacter and the archaeon in B), jittered per sample, so the
two groups differ where a map puts those genomes. Beside the FASTA files: ``samples.tsv``
(contig, sample, group), ``labels.tsv`` (contig, genome, species, genus, family, phylum,
domain), ``contigs.tsv`` (where each contig comes from: the columns of ``chop --table``),
the genome ``catalog.tsv``, ``ATTRIBUTION.md`` and ``manifest.json``. Every table names a
contig by the id ``profile --prefix-ids`` gives it: ``SAMPLE_contig_N``.
"""

from __future__ import annotations

import json
import logging
import math
from dataclasses import dataclass, field
from importlib import resources
from importlib.resources.abc import Traversable
from pathlib import Path
from typing import Any

import numpy as np

from kmervae.errors import KmervaeError
from kmervae.io.atomic import (
    check_writable,
    naming_oserrors,
    remove_path,
    replace_path,
    temporary_name,
)
from kmervae.io.chop import TABLE_COLUMNS, ChopSpec, chop_sequence
from kmervae.io.fasta import file_stem, read_fasta_records, write_wrapped
from kmervae.provenance import file_sha256, run_provenance

log = logging.getLogger(__name__)

#: ``format`` of the inputs folder's manifest
FORMAT_NAME = "kmervae-demo-inputs"
SCHEMA_VERSION = 1

#: contig lengths (bp), drawn uniformly per contig by the chop code; shorter record ends go
CONTIG_LENGTHS = (2000, 10000)
#: the demo's sizes: the share of the full coverage each sample gets
SIZES = {"full": 1.0, "small": 0.06}
#: the samples, in file order: (name, group)
SAMPLES = (("A1", "A"), ("A2", "A"), ("B1", "B"), ("B2", "B"))
#: the groups compared
GROUPS = ("A", "B")
#: coverage of each genome in a sample of group A and of group B, at full size: the share
#: of the genome cut into the sample (above 1: more than one copy, cut at other points)
COVERAGE = {
    "Escherichia_coli_K-12_MG1655.fa.gz": (1.0, 0.2),
    "Helicobacter_pylori_ELS37.fa.gz": (1.0, 0.3),
    "Staphylococcus_aureus_COL.fa.gz": (0.3, 1.0),
    "Oscillibacter_acetigenes_H4_59.fa.gz": (0.2, 1.0),
    "Acidilobus_saccharovorans_345-15.fa.gz": (0.2, 1.0),
    "Mycoplasma_mycoides_Afade.fa.gz": (0.8, 0.4),
    "Escherichia_phage_T4.fa.gz": (1.0, 0.3),
}
#: spread of each sample's coverage around its group's (log-normal sigma)
SAMPLE_JITTER = 0.25
#: the columns of labels.tsv after the contig id
LABEL_COLUMNS = ("genome", "species", "genus", "family", "phylum", "domain")
FASTA_LINE_WIDTH = 80


@dataclass(frozen=True)
class DemoGenome:
    """A shipped genome: its file name and catalogue row (organism, genus, licence …)."""

    file: str
    row: dict[str, str]

    @property
    def genome(self) -> str:
        return file_stem(self.file)

    @property
    def domain(self) -> str:
        return self.row["phylum/domain"].split(";")[0].strip()

    @property
    def phylum(self) -> str:
        """``Bacteria; Pseudomonadota`` -> ``Pseudomonadota`` (a parenthesised class goes)."""
        parts = self.row["phylum/domain"].split(";")
        return parts[-1].split("(")[0].strip()

    def labels(self) -> tuple[str, ...]:
        """The values of :data:`LABEL_COLUMNS`."""
        row = self.row
        return (self.genome, row["organism"], row["genus"], row["family"], self.phylum, self.domain)


def shipped_data() -> Traversable:
    """The folder of the shipped genomes, ``catalog.tsv`` and ``ATTRIBUTION.md``."""
    return resources.files("kmervae.demo") / "data"


def read_demo_catalog() -> tuple[list[str], list[dict[str, str]]]:
    """The header and the rows of the shipped ``catalog.tsv``."""
    lines = (shipped_data() / "catalog.tsv").read_text(encoding="utf-8").splitlines()
    header = lines[0].split("\t")
    rows = [dict(zip(header, line.split("\t"), strict=False)) for line in lines[1:] if line]
    return header, rows


def demo_genomes() -> list[DemoGenome]:
    """The shipped genomes, in catalogue order; each must have its file and a coverage."""
    _, rows = read_demo_catalog()
    genomes = [DemoGenome(row["file"], row) for row in rows]
    listed = {g.file for g in genomes}
    if listed != set(COVERAGE):
        raise KmervaeError(
            f"{shipped_data()}: catalog.tsv lists {sorted(listed)}, the demo expects "
            f"{sorted(COVERAGE)}; reinstall kmervae"
        )
    for genome in genomes:
        if not (shipped_data() / genome.file).is_file():
            raise KmervaeError(f"{shipped_data()}: {genome.file} is missing; reinstall kmervae")
    return genomes


@dataclass
class DemoInputs:
    """What :func:`build_demo_inputs` wrote (paths in the final folder) and its counts."""

    folder: Path
    fastas: list[Path]
    samples: Path
    labels: Path
    catalog: Path
    contigs: Path
    n_contigs: int
    n_bases: int
    per_sample: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True)
class _Piece:
    genome: int
    record: int
    start: int
    end: int


def build_demo_inputs(
    folder: str | Path,
    *,
    size: str = "full",
    seed: int = 1,
    overwrite: bool = False,
    provenance: dict[str, Any] | None = None,
) -> DemoInputs:
    """Write the demo's mock metagenome to ``folder`` (see the module's description).

    ``size``: ``full`` (about 6 000 contigs, 38 Mbp) or ``small`` (about 400 contigs).
    The same ``seed`` gives byte-identical files. ``folder`` is built under a temporary name
    and appears whole; an existing one is replaced only with ``overwrite``.
    """
    if size not in SIZES:
        raise KmervaeError(f"size must be one of {', '.join(SIZES)}, got {size!r}")
    if not 0 <= seed < 2**32:
        raise KmervaeError(f"seed must be in [0, 2^32), got {seed}")
    folder = Path(folder)
    check_writable(folder, overwrite)
    genomes = demo_genomes()
    sequences = [_read_genome(g) for g in genomes]
    spec = ChopSpec(CONTIG_LENGTHS[0], CONTIG_LENGTHS[1], CONTIG_LENGTHS[0], seed)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(len(SAMPLES))]

    tmp = temporary_name(folder)
    remove_path(tmp)
    tmp.mkdir()
    try:
        result, record = _write_inputs(tmp, folder, genomes, sequences, spec, streams, size)
        record["provenance"] = provenance or run_provenance(seed=seed)
        record["seed"] = seed
        with naming_oserrors(folder / "manifest.json"):
            (tmp / "manifest.json").write_text(json.dumps(record, indent=2) + "\n")
        replace_path(tmp, folder)
    except BaseException:
        remove_path(tmp)
        raise
    log.debug(
        "demo inputs: %d contigs (%.1f Mbp) in %d samples written to %s",
        result.n_contigs,
        result.n_bases / 1e6,
        len(SAMPLES),
        folder,
    )
    return result


def _read_genome(genome: DemoGenome) -> list[tuple[str, bytes]]:
    with resources.as_file(shipped_data() / genome.file) as path:
        return [(ident, seq) for ident, _header, seq in read_fasta_records(path)]


def _sample_pieces(
    sequences: list[list[tuple[str, bytes]]],
    coverage: list[float],
    spec: ChopSpec,
    rng: np.random.Generator,
) -> list[_Piece]:
    """The contigs of one sample, shuffled: for each genome, ``ceil(coverage)`` copies cut
    at random points (each copy starts at a random offset), of whose pieces a share
    ``coverage / copies`` is kept."""
    pieces: list[_Piece] = []
    for g, (records, cov) in enumerate(zip(sequences, coverage, strict=True)):
        copies = max(1, math.ceil(cov))
        cut: list[_Piece] = []
        for _ in range(copies):
            for r, (_ident, seq) in enumerate(records):
                offset = int(rng.integers(0, spec.max_length))
                if len(seq) - offset < spec.min_keep:
                    offset = 0
                for start, end in chop_sequence(seq[offset:], spec, rng):
                    cut.append(_Piece(g, r, offset + start, offset + end))
        keep = min(len(cut), round(len(cut) * cov / copies))
        chosen = np.sort(rng.choice(len(cut), size=keep, replace=False))
        pieces.extend(cut[i] for i in chosen)
    return [pieces[i] for i in rng.permutation(len(pieces))]


def _write_inputs(
    tmp: Path,
    final: Path,
    genomes: list[DemoGenome],
    sequences: list[list[tuple[str, bytes]]],
    spec: ChopSpec,
    streams: list[np.random.Generator],
    size: str,
) -> tuple[DemoInputs, dict[str, Any]]:
    data = shipped_data()
    for name in ("catalog.tsv", "ATTRIBUTION.md"):
        (tmp / name).write_bytes((data / name).read_bytes())
    samples_rows = ["contig\tsample\tgroup\n"]
    labels_rows = ["contig\t" + "\t".join(LABEL_COLUMNS) + "\n"]
    table_rows = ["\t".join(TABLE_COLUMNS) + "\n"]
    labels = [g.labels() for g in genomes]
    fastas: list[Path] = []
    sample_records: list[dict[str, Any]] = []
    per_sample: dict[str, int] = {}
    n_contigs = n_bases = 0
    for (sample, group), rng in zip(SAMPLES, streams, strict=True):
        column = GROUPS.index(group)
        jitter = rng.lognormal(0.0, SAMPLE_JITTER, len(genomes))
        coverage = [
            COVERAGE[g.file][column] * SIZES[size] * float(j)
            for g, j in zip(genomes, jitter, strict=True)
        ]
        pieces = _sample_pieces(sequences, coverage, spec, rng)
        fasta = tmp / f"{sample}.fa"
        stem = file_stem(fasta)
        counts = [0] * len(genomes)
        bases = 0
        with naming_oserrors(final / fasta.name), open(fasta, "wb") as out:
            for n, piece in enumerate(pieces, 1):
                ident = f"{stem}_contig_{n}"  # what profile --prefix-ids names it
                record_id, seq = sequences[piece.genome][piece.record]
                out.write(f">contig_{n}\n".encode())
                write_wrapped(out, seq[piece.start : piece.end], FASTA_LINE_WIDTH)
                genome = genomes[piece.genome]
                length = piece.end - piece.start
                samples_rows.append(f"{ident}\t{sample}\t{group}\n")
                labels_rows.append(ident + "\t" + "\t".join(labels[piece.genome]) + "\n")
                table_rows.append(
                    f"{ident}\t{genome.file}\t{record_id}\t{piece.start}\t{piece.end}\t{length}\n"
                )
                counts[piece.genome] += 1
                bases += length
        fastas.append(final / fasta.name)
        per_sample[sample] = len(pieces)
        n_contigs += len(pieces)
        n_bases += bases
        sample_records.append(
            {
                "sample": sample,
                "group": group,
                "file": fasta.name,
                "sha256": file_sha256(fasta),
                "contigs": len(pieces),
                "bases": bases,
                "coverage": {g.file: round(c, 4) for g, c in zip(genomes, coverage, strict=True)},
                "contigs_per_genome": {g.file: c for g, c in zip(genomes, counts, strict=True)},
            }
        )
    for name, rows in (
        ("samples.tsv", samples_rows),
        ("labels.tsv", labels_rows),
        ("contigs.tsv", table_rows),
    ):
        with naming_oserrors(final / name):
            (tmp / name).write_text("".join(rows), encoding="utf-8")
    result = DemoInputs(
        folder=final,
        fastas=fastas,
        samples=final / "samples.tsv",
        labels=final / "labels.tsv",
        catalog=final / "catalog.tsv",
        contigs=final / "contigs.tsv",
        n_contigs=n_contigs,
        n_bases=n_bases,
        per_sample=per_sample,
    )
    record: dict[str, Any] = {
        "format": FORMAT_NAME,
        "schema_version": SCHEMA_VERSION,
        "size": size,
        "contig_lengths": list(CONTIG_LENGTHS),
        "ids": "SAMPLE_contig_N: the FASTA id contig_N prefixed with the file's stem, as "
        "profile --prefix-ids names it",
        "n_contigs": n_contigs,
        "n_bases": n_bases,
        "samples": sample_records,
        "genomes": [
            {
                "file": g.file,
                "sha256": _resource_sha256(g.file),
                "organism": g.row["organism"],
                "license": g.row["license"],
                "coverage_full": dict(zip(GROUPS, COVERAGE[g.file], strict=True)),
            }
            for g in genomes
        ],
        "tables": {
            "samples.tsv": "contig, sample, group",
            "labels.tsv": "contig, " + ", ".join(LABEL_COLUMNS),
            "contigs.tsv": ", ".join(TABLE_COLUMNS),
        },
    }
    return result, record


def _resource_sha256(name: str) -> str:
    with resources.as_file(shipped_data() / name) as path:
        return file_sha256(path)
