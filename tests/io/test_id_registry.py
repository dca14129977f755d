"""Duplicate-id detection: exact, bounded memory, robust to hash collisions."""

from __future__ import annotations

import pytest

from kmervae.errors import InputError
from kmervae.io import ids as ids_module
from kmervae.io.dataset import DatasetWriter
from kmervae.io.ids import IdRegistry


class _Writer:
    """The part of DatasetWriter the registry reads: sources and the ids written."""

    def __init__(self, path, ids, names):
        self.sources = [{"name": n} for n in names]
        path.write_text("".join(f"{i}\n" for i in ids))
        self._path = path

    def ids_file(self):
        return self._path


def _register(tmp_path, batches, buffer_rows=4):
    registry = IdRegistry(tmp_path / "ids", buffer_rows=buffer_rows)
    row, all_ids = 0, []
    for source, ids in batches:
        registry.add(ids, row, source)
        row += len(ids)
        all_ids += ids
    return registry, _Writer(tmp_path / "ids.txt", all_ids, ["a.fa", "b.fa"])


def test_unique_ids_pass(tmp_path):
    registry, writer = _register(
        tmp_path, [(0, [f"x{i}" for i in range(50)]), (1, [f"y{i}" for i in range(50)])]
    )
    registry.check_duplicates(writer, prefixed=False)
    registry.close()
    assert not any(p.name.startswith(".kmervae-ids") for p in tmp_path.iterdir())


def test_duplicate_across_files_is_named(tmp_path):
    registry, writer = _register(tmp_path, [(0, ["r1", "r2", "r3"]), (1, ["q", "r2"])])
    with pytest.raises(InputError, match=r"'r2' \(2 times, in a.fa and b.fa\).*prefix_ids"):
        registry.check_duplicates(writer, prefixed=False)
    registry.close()


def test_hash_collisions_are_not_duplicates(tmp_path, monkeypatch):
    import numpy as np

    monkeypatch.setattr(ids_module, "id_hashes", lambda ids: np.zeros(len(ids), np.uint64))
    registry, writer = _register(tmp_path, [(0, ["a", "b", "c"]), (1, ["d"])])
    registry.check_duplicates(writer, prefixed=False)  # all hashes equal, ids differ
    registry.close()
    registry, writer = _register(tmp_path, [(0, ["a", "b", "c"]), (0, ["b"])])
    with pytest.raises(InputError, match=r"'b' .*within a\.fa"):
        registry.check_duplicates(writer, prefixed=True)
    registry.close()


def test_registry_reads_a_real_writer(tmp_path):
    import numpy as np

    writer = DatasetWriter(tmp_path / "d")
    src = writer.add_source({"name": "x.fa"})
    registry = IdRegistry(tmp_path / "ids")
    for ids in (["a", "b"], ["c", "a"]):
        registry.add(ids, writer.n_rows, src)
        writer.append(np.zeros((2, 2772), np.float32), np.zeros(2, np.int64), ids)
    with pytest.raises(InputError, match="'a'"):
        registry.check_duplicates(writer, prefixed=False)
    registry.close()
    writer.abort()
    assert sorted(p.name for p in tmp_path.iterdir()) == []
