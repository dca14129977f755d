"""MCL through the real ``mcl`` program (the mcl package, version 22): the graph is streamed
into ``mcxload`` once, as mcl's own binary matrix, and ``mcl`` runs on it for every
inflation asked for; ``mcxdump`` turns each result back into clusters of graph rows."""

from __future__ import annotations

import logging
import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from kmervae.cluster.graph import EdgeList
from kmervae.errors import KmervaeError

log = logging.getLogger(__name__)

PROGRAMS = ("mcl", "mcxload", "mcxdump")
INSTALL_HINT = (
    "install the mcl package (Debian/Ubuntu: apt-get install mcl; conda: conda install -c "
    "bioconda mcl)"
)
_BUFFER_BYTES = 8 << 20
_FULL_BELOW = 64 << 10  # bytes free under which a folder's disk counts as full
_TELLING = ("fail", "error", "cannot", "can't", "no space", "not ", "unable")


def mcl_program(name: str = "mcl") -> str:
    """Path of one of the mcl package's programs, or one line saying how to install it."""
    found = shutil.which(name)
    if found is None:
        raise KmervaeError(f"the program {name!r} is not on PATH: {INSTALL_HINT}")
    return found


def check_mcl_installed() -> None:
    for name in PROGRAMS:
        mcl_program(name)


def run_program(command: list[str], what: str, folder: Path, cwd: Path | None = None) -> None:
    """Run one of the mcl package's programs, which writes into ``folder``; a failure is one
    line (see :func:`program_failed`)."""
    proc = subprocess.run(command, capture_output=True, text=True, cwd=cwd)
    if proc.returncode != 0 or _disk_full(folder):
        raise program_failed(what, proc.returncode, proc.stderr or proc.stdout or "", folder)


def _disk_full(folder: Path) -> bool:
    # the mcl programs do not always notice a failed write (text output can end short with
    # exit status 0), so the space left is checked after each of them
    try:
        return shutil.disk_usage(folder).free < _FULL_BELOW
    except OSError:
        return False


def program_failed(what: str, code: int, stderr: str, folder: Path) -> KmervaeError:
    """One line for a failed mcl-package program: a full disk named as such, else its most
    telling message (the first line that says what failed, not its closing 'exiting')."""
    if _disk_full(folder):
        return KmervaeError(f"{what} could not write in {folder}: No space left on device")
    lines = [line.strip(" _") for line in stderr.strip().splitlines() if line.strip(" _.")]
    telling = [line for line in lines if any(w in line.lower() for w in _TELLING)]
    message = (telling or lines or ["no message"])[0]
    return KmervaeError(f"{what} failed (exit {code}): {message}")


def load_matrix(edges: EdgeList, path: Path) -> Path:
    """Stream ``edges`` into ``mcxload``: a symmetric binary mcl matrix of ``n_nodes`` rows
    at ``path`` (each pair is sent once and mirrored by mcxload)."""
    from kmervae.cluster.kernels import format_edges

    started = time.perf_counter()
    command = [
        mcl_program("mcxload"),
        "-123", "-",
        "-123-max", str(edges.n_nodes),
        "--stream-mirror",
        "--write-binary",
        "-o", str(path),
    ]  # fmt: skip
    buf = np.empty(_BUFFER_BYTES, np.uint8)
    proc = subprocess.Popen(
        command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
    )
    assert proc.stdin is not None
    try:
        e = 0
        while e < len(edges):
            e, nbytes = format_edges(edges.src, edges.dst, edges.weight, e, buf)
            proc.stdin.write(buf[:nbytes].tobytes())
        proc.stdin.close()
    except BrokenPipeError:
        pass
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    assert proc.stderr is not None
    err = proc.stderr.read().decode(errors="replace")
    if proc.wait() != 0 or _disk_full(path.parent):
        raise program_failed("mcxload", proc.returncode, err, path.parent)
    log.info(
        "mcl matrix of %d contigs and %d edges loaded in %.1f s",
        edges.n_nodes,
        len(edges),
        time.perf_counter() - started,
    )
    return path


def read_mcl_clusters(path: Path, n_nodes: int) -> np.ndarray:
    """Labels (int64 (n_nodes,), cluster codes from 0) of an mcl clustering file."""
    dump = path.with_name(path.name + ".txt")
    dumped = [mcl_program("mcxdump"), "-icl", str(path), "-o", str(dump)]
    run_program(dumped, "mcxdump", path.parent)
    labels = np.full(n_nodes, -1, np.int64)
    with open(dump) as fh:
        for code, line in enumerate(fh):
            members = np.array(line.split(), dtype=np.int64)
            labels[members] = code
    dump.unlink()
    missing = int((labels < 0).sum())
    if missing:  # mcl puts every node in a cluster: a file that ends short
        raise KmervaeError(f"{path}: the clustering lacks {missing} of {n_nodes} contigs")
    return labels


def run_mcl(
    matrix: Path,
    inflations: Sequence[float],
    n_nodes: int,
    *,
    threads: int = 1,
    resource: int | None = None,
) -> list[np.ndarray]:
    """Cluster a loaded matrix (:func:`load_matrix`) at each inflation.

    Returns one int64 (n_nodes,) label array per inflation (codes from 0; every node is in a
    cluster, an isolated one alone). The mcl cluster files are left beside ``matrix`` as
    ``NAME.I<inflation>``, for :mod:`kmervae.cluster.consensus`. ``resource`` is mcl's
    ``-resource`` (None: mcl's default pruning scheme).
    """
    out = []
    for inflation in inflations:
        started = time.perf_counter()
        target = cluster_file(matrix, inflation)
        command = [mcl_program("mcl"), str(matrix), "-I", f"{inflation:g}"]
        command += ["-te", str(max(1, threads)), "-o", str(target), "-V", "all"]
        if resource is not None:
            command += ["-resource", str(resource)]
        run_program(command, f"mcl -I {inflation:g}", matrix.parent)
        labels = read_mcl_clusters(target, n_nodes)
        log.info(
            "mcl -I %g: %d clusters in %.1f s",
            inflation,
            int(labels.max()) + 1 if n_nodes else 0,
            time.perf_counter() - started,
        )
        out.append(labels)
    return out


def cluster_file(matrix: Path, inflation: float) -> Path:
    return matrix.with_name(f"{matrix.name}.I{inflation:g}")
