"""Embeddings exported for other tools: VAMB's ``latent.npz`` and a plain TSV, streamed.

From an embedding store (``kmervae embed``) or an index store (``kmervae index build``)::

    NAME.npz            VAMB's layout: one member ``arr_0``, float32 (N x latent), rows in
                        the order of the store (``np.load(NAME.npz)["arr_0"]``)
    NAME.names.txt      the N contig ids, one a line, in the same order
    NAME.tsv            ``contig<TAB>dim_0<TAB>…<TAB>dim_{latent-1}``: a header line, then
                        one line per contig (values to 9 significant digits: float32 exactly)
    NAME.npz.json, NAME.tsv.json   the provenance (:func:`kmervae.provenance.sidecar_path`)

Rows are read in blocks of about 32 MiB and written as they come: memory stays flat,
whatever the number of contigs. The ``.npz`` is a ZIP64 archive whose member is written as a
stream (its ``.npy`` header first, the shape being known in advance), so it needs no copy of
the matrix in memory, unlike :func:`numpy.savez_compressed`; NumPy and VAMB read it alike.
"""

from __future__ import annotations

import json
import zipfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from kmervae.errors import InputError, KmervaeError

#: bytes of float32 rows read at once
BLOCK_BYTES = 32 << 20
#: rows formatted as text at once by the TSV writer
_TEXT_ROWS = 1024
#: the member VAMB reads (``vamb.vambtools.read_npz``), as ``np.savez`` names it
NPZ_MEMBER = "arr_0"

Blocks = Iterator[tuple[list[str], np.ndarray]]


@dataclass
class LatentSource:
    """What an export reads: ``kind`` ``embeddings`` or ``store``, its shape, the model that
    made it and ``blocks(block_rows)`` yielding (ids, float32 (n, dim)) in row order."""

    path: Path
    kind: str
    n_rows: int
    dim: int
    model_fingerprint: str
    blocks: Callable[[int], Blocks]

    def record(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "path": str(self.path.resolve()),
            "n_rows": self.n_rows,
            "dim": self.dim,
            "model_fingerprint": self.model_fingerprint or None,
        }


def input_kind(path: str | Path) -> str:
    """``model`` (a model folder or a training checkpoint ``.pt``), ``embeddings`` (an
    embedding store) or ``store`` (an index store).

    Raises
    ------
    InputError
        No such path, or none of these.
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such model, embedding store or index store")
    if path.is_file() and path.suffix == ".pt":
        return "model"
    if path.is_dir() and (path / "config.json").is_file():
        return "model"
    if path.is_dir() and (path / "manifest.json").is_file():
        try:
            found = json.loads((path / "manifest.json").read_text()).get("format")
        except (OSError, ValueError, AttributeError):
            found = None
        kinds = {"kmervae-embeddings": "embeddings", "kmervae-index": "store"}
        if found in kinds:
            return kinds[found]
    raise InputError(
        f"{path}: not a model (folder or .pt), an embedding store (kmervae embed) or an "
        "index store (kmervae index build)"
    )


def open_latent_source(path: str | Path) -> LatentSource:
    """An embedding store or an index store, opened (and checked) for an export."""
    path = Path(path)
    kind = input_kind(path)
    if kind == "embeddings":
        from kmervae.io.embeddings import open_embeddings

        emb = open_embeddings(path)
        return LatentSource(
            path, kind, emb.n_rows, emb.latent, emb.model_fingerprint, emb.iter_blocks
        )
    if kind == "store":
        from kmervae.index import open_index

        store = open_index(path)

        def blocks(block_rows: int) -> Blocks:
            for _, got in store.iter_batches(["id", "embedding"], block_rows):
                ids = [str(i) for i in got["id"].tolist()]
                yield ids, np.asarray(got["embedding"], dtype=np.float32)

        return LatentSource(
            path, kind, store.n_committed, store.dim, store.model_fingerprint, blocks
        )
    raise InputError(f"{path}: a model, not embeddings (a model exports to .onnx)")


def block_rows(dim: int) -> int:
    return max(256, BLOCK_BYTES // (4 * max(dim, 1)))


def names_path(npz: str | Path) -> Path:
    """Where the contig ids of ``NAME.npz`` go: ``NAME.names.txt`` beside it."""
    npz = Path(npz)
    stem = npz.name[: -len(".npz")] if npz.name.endswith(".npz") else npz.name
    return npz.with_name(stem + ".names.txt")


def _rows(source: LatentSource) -> Blocks:
    """The source's blocks, checked: the row count the source announced."""
    n = 0
    for ids, x in source.blocks(block_rows(source.dim)):
        if x.shape != (len(ids), source.dim):
            raise InputError(
                f"{source.path}: a block of {x.shape} for {len(ids)} ids of {source.dim} dims"
            )
        n += len(ids)
        yield ids, x
    if n != source.n_rows:
        raise InputError(f"{source.path}: {n} rows read, {source.n_rows} announced")


def write_latent_npz(source: LatentSource, tmp: Path, names_tmp: Path) -> int:
    """Write the source's embeddings to ``tmp`` (VAMB's ``latent.npz``: member ``arr_0``,
    float32 (N x dim), deflate-compressed) and its ids to ``names_tmp``; returns N."""
    from numpy.lib import format as npformat

    header = {"descr": "<f4", "fortran_order": False, "shape": (source.n_rows, source.dim)}
    n = 0
    with (
        zipfile.ZipFile(
            tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1, allowZip64=True
        ) as archive,
        archive.open(NPZ_MEMBER + ".npy", "w", force_zip64=True) as member,
        open(names_tmp, "w", encoding="utf-8", newline="\n") as names,
    ):
        npformat.write_array_header_1_0(member, header)
        for ids, x in _rows(source):
            member.write(np.ascontiguousarray(x, dtype="<f4").data.cast("B"))
            names.write("".join(i + "\n" for i in ids))
            n += len(ids)
    return n


def write_latent_tsv(source: LatentSource, tmp: Path) -> int:
    """Write ``contig<TAB>dim_0…`` (a header line, then one line per contig, values to 9
    significant digits) to ``tmp``; returns N."""
    row = "\t".join(["%.9g"] * source.dim)
    n = 0
    with open(tmp, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("\t".join(["contig", *(f"dim_{j}" for j in range(source.dim))]) + "\n")
        for ids, x in _rows(source):
            for start in range(0, len(ids), _TEXT_ROWS):  # text of a few MiB at a time
                values = x[start : start + _TEXT_ROWS].tolist()
                names = ids[start : start + _TEXT_ROWS]
                fh.write(
                    "".join(f"{i}\t{row % tuple(v)}\n" for i, v in zip(names, values, strict=True))
                )
            n += len(ids)
    return n


def export_latent(
    source: LatentSource,
    output: str | Path,
    fmt: str,
    provenance: dict[str, Any],
    *,
    overwrite: bool = False,
) -> dict[str, Any]:
    """Write ``source`` as ``fmt`` (``npz`` or ``tsv``) to ``output``, with its sidecar (and,
    for ``npz``, :func:`names_path`), all appearing together; returns the sidecar record.

    Raises
    ------
    KmervaeError
        An output that exists (without ``overwrite``) or cannot be written, an ``npz`` to a
        device or pipe.
    """
    from kmervae.io.atomic import is_stream, naming_oserrors, temporary_name
    from kmervae.provenance import atomic_with_sidecar

    output = Path(output)
    record: dict[str, Any] = {
        "kind": f"embeddings ({fmt})",
        "source": source.record(),
        "provenance": provenance,
    }
    if fmt == "tsv":
        record["columns"] = ["contig", *(f"dim_{j}" for j in range(source.dim))]
        with (
            naming_oserrors(output),
            atomic_with_sidecar(output, record, overwrite=overwrite) as tmp,
        ):
            record["n_rows"] = write_latent_tsv(source, tmp)
        return record
    if fmt != "npz":
        raise KmervaeError(f"unknown embeddings format {fmt!r} (npz or tsv)")
    if is_stream(output):
        raise KmervaeError(f"{output}: an .npz export goes to a file (with its .names.txt)")
    names = names_path(output)
    record.update({"member": NPZ_MEMBER, "dtype": "float32", "names": names.name})
    with (
        naming_oserrors(output),
        atomic_with_sidecar(output, record, overwrite=overwrite, companions=[names]) as tmp,
    ):
        record["n_rows"] = write_latent_npz(source, tmp, temporary_name(names))
        record["shape"] = [record["n_rows"], source.dim]
    return record
