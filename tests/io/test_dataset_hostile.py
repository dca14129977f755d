"""Damaged, mismatched and foreign profile datasets: every reader problem is one line naming
the file (and row), through the command line; and the group commit that keeps a legacy pair
(and a train / validation pair) whole."""

from __future__ import annotations

import gzip
import json
import os
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
from hostile import assert_clean, assert_refused
from profile_factory import SMALL_LAYOUT, read_back, write_dataset

from kmervae.errors import InputError
from kmervae.io.atomic import commit_outputs, recover_interrupted_commits
from kmervae.io.dataset import open_dataset, output_files
from kmervae.kmers.layout import FeatureLayout


def _edit_manifest(folder: Path, **changes: object) -> None:
    path = folder / "manifest.json"
    manifest = json.loads(path.read_text())
    manifest.update(changes)
    path.write_text(json.dumps(manifest))


# -- native datasets --------------------------------------------------------------------------
def _native_more_ids(d: Path) -> Path:
    with open(d / "ids.txt", "a") as fh:
        fh.write("extra\n")
    return d / "ids.txt"


def _native_other_layout(d: Path) -> Path:
    _edit_manifest(d, layout=FeatureLayout((3,)).to_json(), n_features=32)
    return d


def _native_float64(d: Path) -> Path:
    np.save(d / "features.npy", np.load(d / "features.npy").astype(np.float64))
    return d


def _native_lengths_float(d: Path) -> Path:
    np.save(d / "lengths.npy", np.load(d / "lengths.npy").astype(np.float64))
    return d


def _native_truncated(d: Path) -> Path:
    size = os.path.getsize(d / "features.npy")
    with open(d / "features.npy", "r+b") as fh:
        fh.truncate(size - 100)
    return d / "features.npy"


def _native_padded(d: Path) -> Path:
    with open(d / "features.npy", "ab") as fh:
        fh.write(b"\0" * 8)
    return d / "features.npy"


def _native_garbage_npy(d: Path) -> Path:
    (d / "gc.npy").write_bytes(b"not an array at all")
    return d / "gc.npy"


def _native_fortran(d: Path) -> Path:
    np.save(d / "features.npy", np.asfortranarray(np.load(d / "features.npy")))
    return d / "features.npy"


def _native_other_format(d: Path) -> Path:
    _edit_manifest(d, format="kmervae-embeddings")
    return d


def _native_bad_json(d: Path) -> Path:
    (d / "manifest.json").write_text('{"format": "kmervae-profiles", ')
    return d / "manifest.json"


def _native_row_count_text(d: Path) -> Path:
    _edit_manifest(d, n_rows="6")
    return d / "manifest.json"


def _native_n_features(d: Path) -> Path:
    _edit_manifest(d, n_features=2772)
    return d / "manifest.json"


def _native_dtype_claim(d: Path) -> Path:
    _edit_manifest(d, dtype="float16")
    return d


def _native_no_ids(d: Path) -> Path:
    (d / "ids.txt").unlink()
    return d


def _native_changed_ids(d: Path) -> Path:
    ids = (d / "ids.txt").read_text().split()
    (d / "ids.txt").write_text("".join(f"{i}x\n" for i in ids))
    return d / "ids.txt"


def _native_not_utf8(d: Path) -> Path:
    ids = (d / "ids.txt").read_bytes().split(b"\n")
    ids[1] = b"caf\xe9"
    (d / "ids.txt").write_bytes(b"\n".join(ids))
    return d / "ids.txt"


def _native_no_manifest(d: Path) -> Path:
    (d / "manifest.json").unlink()
    return d


NATIVE_CASES: dict[str, tuple[Callable[[Path], Path], str]] = {
    "more-ids-than-rows": (_native_more_ids, "7 ids for the 6 profile rows"),
    "manifest-of-another-layout": (_native_other_layout, "features.npy has shape (6, 136)"),
    "features-float64": (_native_float64, "dtype <f8"),
    "lengths-float": (_native_lengths_float, "lengths.npy"),
    "truncated-npy": (_native_truncated, "is truncated"),
    "padded-npy": (_native_padded, "extra bytes"),
    "garbage-npy": (_native_garbage_npy, "not a readable .npy"),
    "fortran-order": (_native_fortran, "Fortran"),
    "manifest-of-another-format": (_native_other_format, "not a kmervae profile dataset"),
    "manifest-not-json": (_native_bad_json, "not valid JSON"),
    "row-count-as-text": (_native_row_count_text, "bad row count"),
    "n-features-disagrees": (_native_n_features, "n_features"),
    "dtype-claim-disagrees": (_native_dtype_claim, "manifest says 'float16'"),
    "ids-missing": (_native_no_ids, "missing ids.txt"),
    "ids-changed": (_native_changed_ids, "checksum"),
    "ids-not-utf8": (_native_not_utf8, "line 2 is not UTF-8"),
    "folder-without-manifest": (_native_no_manifest, "not a profile dataset"),
}


@pytest.mark.bad_input
@pytest.mark.parametrize("case", sorted(NATIVE_CASES))
def test_damaged_native_dataset_is_one_line(tmp_path, capsys, case):
    damage, needle = NATIVE_CASES[case]
    ds = write_dataset(tmp_path / "d", 6)
    culprit = damage(ds.path)
    out = tmp_path / "out"
    assert_refused(["concat", ds.path, "-o", out], capsys, needle, str(culprit))
    assert_clean(tmp_path, out)


# -- legacy pairs -----------------------------------------------------------------------------
def _legacy_ids_of_another_run(npy: Path) -> Path:
    txt = npy.with_suffix(".txt")
    ids = txt.read_text().split()
    txt.write_text("".join(f"{i}\n" for i in reversed(ids)))  # same ids, other order
    return txt


def _legacy_npy_of_another_run(npy: Path) -> Path:
    other = write_dataset(npy.parent / "other", 5, seed=9, fmt="legacy")
    os.replace(other.path, npy)
    return npy


def _legacy_side_of_another_layout(npy: Path) -> Path:
    side = npy.with_suffix(".json")
    manifest = json.loads(side.read_text())
    manifest["layout"] = FeatureLayout((5, 4, 3, 2, 1)).to_json()
    side.write_text(json.dumps(manifest))
    return side


def _legacy_columns(npy: Path) -> Path:
    np.save(npy, np.ones((6, 50), np.float32))
    npy.with_suffix(".json").unlink()
    return npy


def _legacy_float64(npy: Path) -> Path:
    np.save(npy, np.load(npy).astype(np.float64))
    return npy


def _legacy_truncated(npy: Path) -> Path:
    with open(npy, "r+b") as fh:
        fh.truncate(os.path.getsize(npy) - 4)
    return npy


def _legacy_no_ids(npy: Path) -> Path:
    npy.with_suffix(".txt").unlink()
    return npy


def _legacy_ids_a_folder(npy: Path) -> Path:
    npy.with_suffix(".txt").unlink()
    npy.with_suffix(".txt").mkdir()
    return npy.with_suffix(".txt")


def _legacy_damaged_gzip(npy: Path) -> Path:
    txt = npy.with_suffix(".txt")
    packed = gzip.compress(txt.read_bytes())
    txt.unlink()
    gz = npy.with_name(npy.stem + ".txt.gz")
    gz.write_bytes(packed[: len(packed) // 2])
    return gz


def _legacy_nan_length(npy: Path) -> Path:
    matrix = np.load(npy)
    matrix[3, 0] = np.nan
    np.save(npy, matrix)
    return npy


LEGACY_CASES: dict[str, tuple[Callable[[Path], Path], tuple[str, ...]]] = {
    "ids-of-another-run": (_legacy_ids_of_another_run, ("do not belong together", "l.npy")),
    "npy-of-another-run": (_legacy_npy_of_another_run, ("has 5 rows", "l.json")),
    "side-manifest-of-another-layout": (_legacy_side_of_another_layout, ("k=[5, 4, 3, 2, 1]",)),
    "columns-of-no-layout": (_legacy_columns, ("50 columns",)),
    "float64": (_legacy_float64, ("2-D float32",)),
    "truncated": (_legacy_truncated, ("is truncated",)),
    "ids-missing": (_legacy_no_ids, ("no ids file",)),
    "ids-a-folder": (_legacy_ids_a_folder, ()),
    "ids-damaged-gzip": (_legacy_damaged_gzip, ("damaged compressed file",)),
    "nan-length": (_legacy_nan_length, ("row 4", "length nan")),
}


@pytest.mark.bad_input
@pytest.mark.parametrize("case", sorted(LEGACY_CASES))
def test_damaged_legacy_pair_is_one_line(tmp_path, capsys, case):
    damage, needles = LEGACY_CASES[case]
    ds = write_dataset(tmp_path / "l", 6, fmt="legacy")
    culprit = damage(ds.path)
    out = tmp_path / "out"
    assert_refused(["concat", ds.path, "-o", out], capsys, *needles, culprit.name)
    assert_clean(tmp_path, out)


def test_a_legacy_pair_from_elsewhere_needs_no_side_manifest(tmp_path):
    ds = write_dataset(tmp_path / "l", 6, fmt="legacy")
    ds.path.with_suffix(".json").unlink()
    assert read_back(ds.path).ids == ds.ids
    (tmp_path / "l.json").write_text('{"unrelated": true}')  # not ours: not read
    assert read_back(ds.path).ids == ds.ids


# -- the group commit ---------------------------------------------------------------------------
def _pair(tmp_path: Path, text: str) -> list[tuple[Path, Path]]:
    moves = []
    for name in ("a.txt", "a.npy", "a.json"):
        tmp = tmp_path / f".{name}.tmp-{os.getpid()}"
        tmp.write_text(f"{text} {name}")
        moves.append((tmp, tmp_path / name))
    return moves


def _contents(tmp_path: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(tmp_path.iterdir())}


@pytest.mark.kill_point
@pytest.mark.parametrize("at", [1, 2, 3, 4, 5, 6])
def test_commit_interrupted_at_each_rename_rolls_back(tmp_path, monkeypatch, at):
    """Ctrl-C (or any error) at any rename of a group commit puts the old files back."""
    commit_outputs(_pair(tmp_path, "old"))
    old = _contents(tmp_path)
    real, calls = os.rename, []

    def rename(src, dst):
        calls.append(src)
        if len(calls) == at:
            raise KeyboardInterrupt
        real(src, dst)

    moves = _pair(tmp_path, "new")
    monkeypatch.setattr(os, "rename", rename)
    with pytest.raises(KeyboardInterrupt):
        commit_outputs(moves)
    monkeypatch.undo()
    for tmp, _ in moves:  # the temporaries are the caller's to remove
        tmp.unlink()
    assert _contents(tmp_path) == old


def test_dead_writers_journal_is_refused_then_rolled_back(tmp_path):
    """A writer killed mid-commit: the journal makes readers refuse the pair, and the next
    writer's recovery restores the old pair exactly."""
    old = write_dataset(tmp_path / "l", 6, fmt="legacy")
    new = write_dataset(tmp_path / "n", 6, seed=3, fmt="legacy")
    dead = 2**22 + 12345  # above the default pid_max: no such process
    assert not Path(f"/proc/{dead}").exists()
    finals = output_files(tmp_path / "l", "legacy")
    moves = []
    for final, source in zip(finals, output_files(tmp_path / "n", "legacy"), strict=True):
        tmp = final.with_name(f".{final.name}.tmp-{dead}")
        os.rename(source, tmp)
        moves.append((tmp.name, final.name))
    journal = finals[0].with_name(f".{finals[0].name}.tmp-{dead}.commit")
    journal.write_text(json.dumps({"pid": dead, "moves": moves}))
    # killed in step 3, after the new ids were moved in
    for final in finals:
        os.rename(final, final.with_name(f".{final.name}.old-{dead}"))
    os.rename(finals[0].with_name(f".{finals[0].name}.tmp-{dead}"), finals[0])
    with pytest.raises(InputError, match="interrupted write"):
        open_dataset(old.path)
    recover_interrupted_commits([finals[1]])
    back = read_back(old.path)
    assert back.ids == old.ids
    np.testing.assert_array_equal(back.features, old.features)
    assert_clean(tmp_path)
    assert new.ids != old.ids


def test_values_are_checked_where_every_row_is_read(tmp_path, capsys):
    """NaN in a row of features is named with its row and id by concat (which reads every row)."""
    ds = write_dataset(tmp_path / "d", 6, layout=SMALL_LAYOUT)
    features = np.load(ds.path / "features.npy")
    features[4, 7] = np.inf
    np.save(ds.path / "features.npy", features)
    out = tmp_path / "out"
    assert_refused(["concat", ds.path, "-o", out], capsys, "row 5", ds.ids[4], "infinite")
    assert_clean(tmp_path, out)


@pytest.mark.bad_input
def test_block_reader_names_a_legacy_row_with_an_impossible_length(tmp_path):
    from kmervae.io.row_blocks import DatasetBlocks

    ds = write_dataset(tmp_path / "l", 6, fmt="legacy")
    matrix = np.load(ds.path)
    matrix[2, 0] = -1
    np.save(ds.path, matrix)
    with pytest.raises(InputError, match=f"row 3 \\(id {ds.ids[2]}\\) has length -1"):
        list(DatasetBlocks(open_dataset(ds.path), SMALL_LAYOUT.ks, 4))
