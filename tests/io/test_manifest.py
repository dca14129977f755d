"""JSON records: NumPy values written as plain JSON, atomically; manifests checked on read."""

from __future__ import annotations

import json

import numpy as np
import pytest

from kmervae.errors import InputError, KmervaeError
from kmervae.io.manifest import json_default, read_json_manifest, write_json


def test_write_json_turns_numpy_values_into_json(tmp_path):
    record = {"n": np.int64(3), "x": np.float32(0.5), "rows": np.arange(3), "s": "a"}
    write_json(tmp_path / "r.json", record)
    assert json.loads((tmp_path / "r.json").read_text()) == {
        "n": 3,
        "x": 0.5,
        "rows": [0, 1, 2],
        "s": "a",
    }
    with pytest.raises(KmervaeError, match="already exists"):
        write_json(tmp_path / "r.json", {})
    write_json(tmp_path / "r.json", {"again": True}, overwrite=True)
    assert json.loads((tmp_path / "r.json").read_text()) == {"again": True}
    with pytest.raises(TypeError, match="not JSON serialisable: set"):
        json_default({1})


def test_read_json_manifest_checks_format_and_schema(tmp_path):
    file = tmp_path / "manifest.json"
    with pytest.raises(InputError, match=r"no manifest\.json"):
        read_json_manifest(file, "kmervae-x", 1, "x folder")
    file.write_text("{")
    with pytest.raises(InputError, match="not valid JSON"):
        read_json_manifest(file, "kmervae-x", 1, "x folder")
    file.write_text(json.dumps({"format": "other"}))
    with pytest.raises(InputError, match="not a kmervae x folder"):
        read_json_manifest(file, "kmervae-x", 1, "x folder")
    file.write_text(json.dumps({"format": "kmervae-x", "schema_version": 2}))
    with pytest.raises(InputError, match="newer"):
        read_json_manifest(file, "kmervae-x", 1, "x folder")
    file.write_text(json.dumps({"format": "kmervae-x", "schema_version": 1}))
    assert read_json_manifest(file, "kmervae-x", 1, "x folder")["schema_version"] == 1
