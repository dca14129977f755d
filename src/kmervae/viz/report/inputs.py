"""What the report is made from: each INPUT recognised by the manifest it holds, checked
before anything is written.

==================  =====================================================================
kind                recognised by
==================  =====================================================================
``run``             a folder with ``run.json`` (a training run) and ``history.jsonl``
``model``           a folder with a kmervae ``config.json`` (and ``card.json``)
``evaluation``      a JSON file with a ``protocol`` (``kmervae evaluate ... -o X.json``)
``matrix``          the same with ``results`` (``kmervae evaluate matrix``'s OUT.json)
``map``             ``manifest.json`` format ``kmervae-map``
``clusters``        ``manifest.json`` format ``kmervae-clusters``
``compare``         ``manifest.json`` format ``kmervae-compare``
``embeddings``      ``manifest.json`` format ``kmervae-embeddings``
``profiles``,       ``manifest.json`` of a profile dataset, an index store or a k-NN graph
``index``,          (listed with their provenance only)
``graph``
``table``           a file that stands alone with a sidecar ``NAME.json`` (chop tables,
                    search hits …), or that sidecar itself (provenance only)
``pipeline``        a folder with ``pipeline.json``: the outputs its stages name, and every
                    other entry of the folder with a manifest above
==================  =====================================================================
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kmervae.errors import InputError
from kmervae.provenance import SIDECAR_FORMAT, file_sha256, sidecar_path

log = logging.getLogger(__name__)

#: the kinds of input, and how the report names them
KINDS = {
    "pipeline": "pipeline",
    "run": "training run",
    "model": "model",
    "evaluation": "evaluation",
    "matrix": "evaluation matrix",
    "map": "map",
    "clusters": "clusters",
    "compare": "sample comparison",
    "embeddings": "embeddings",
    "profiles": "profile dataset",
    "index": "index store",
    "graph": "k-NN graph",
    "table": "table",
}
#: what an unrecognised input is told it could have been
EXPECTED = (
    "expected a training run, a model folder, an evaluate JSON result, a map, cluster, "
    "compare, embed or pipeline folder, or another kmervae output with a manifest"
)


@dataclass
class ReportInput:
    """One input: ``kind`` (a key of :data:`KINDS`), the ``path`` named, the JSON file it
    was recognised by (``source``) and its content (``record``); ``via``: the pipeline
    folder it was found in; ``data``: what the kind's reader opened (a map, a cluster
    file, a history …)."""

    kind: str
    path: Path
    source: Path
    record: dict[str, Any]
    via: Path | None = None
    data: dict[str, Any] = field(default_factory=dict)

    @property
    def label(self) -> str:
        return KINDS[self.kind]

    @property
    def provenance(self) -> dict[str, Any]:
        """The provenance block of the record; for an index store, that of its last
        build or add."""
        prov = self.record.get("provenance")
        if not isinstance(prov, dict) and isinstance(self.record.get("history"), list):
            steps = [h for h in self.record["history"] if isinstance(h, dict)]
            prov = steps[-1].get("provenance") if steps else None
        return prov if isinstance(prov, dict) else {}

    def describe(self) -> dict[str, Any]:
        """What the report's own provenance records of this input."""
        return {
            "kind": self.kind,
            "path": str(self.path.resolve()),
            "manifest": str(self.source.resolve()),
            "manifest_sha256": file_sha256(self.source),
            "via": None if self.via is None else str(self.via.resolve()),
        }


def load_json(path: Path) -> dict[str, Any]:
    """A JSON object from ``path``; every problem is one InputError line naming it."""
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except UnicodeDecodeError:
        raise InputError(f"{path}: not a text file") from None
    except json.JSONDecodeError as exc:
        raise InputError(f"{path}: not valid JSON ({exc})") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot be read ({exc.strerror or exc})") from None
    if not isinstance(data, dict):
        raise InputError(f"{path}: not a JSON object")
    return data


def _manifest_kinds() -> dict[str, tuple[str, int, str]]:
    """format name -> (kind, newest schema this version reads, what it is called)."""
    from kmervae.cluster import output as clusters
    from kmervae.index import graph, protocol
    from kmervae.io import dataset, embeddings
    from kmervae.viz import compare, maps

    return {
        maps.FORMAT_NAME: ("map", maps.SCHEMA_VERSION, "map"),
        clusters.FORMAT_NAME: ("clusters", clusters.SCHEMA_VERSION, "cluster folder"),
        compare.FORMAT_NAME: ("compare", compare.SCHEMA_VERSION, "comparison"),
        embeddings.FORMAT_NAME: ("embeddings", embeddings.SCHEMA_VERSION, "embedding store"),
        dataset.FORMAT_NAME: ("profiles", dataset.SCHEMA_VERSION, "profile dataset"),
        protocol.FORMAT_NAME: ("index", protocol.SCHEMA_VERSION, "index store"),
        graph.FORMAT_NAME: ("graph", graph.SCHEMA_VERSION, "k-NN graph"),
    }


def _recognised(path: Path) -> bool:
    """Whether ``path`` looks like an input the report reads (cheap; reads no data)."""
    if path.is_dir():
        if (path / "run.json").is_file() or (path / "config.json").is_file():
            return True
        file = path / "manifest.json"
        if not file.is_file():
            return False
        try:
            data = json.loads(file.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return True  # damaged: reading it says so
        return isinstance(data, dict) and data.get("format") in _manifest_kinds()
    if path.suffix == ".json":
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError):
            return False
        if not isinstance(data, dict):
            return False
        if data.get("format") == SIDECAR_FORMAT:
            # the sidecar of a report is no input of a report
            return not str(data.get("file", "")).endswith(".html")
        return "protocol" in data
    # a page (an earlier report) is no input of a report
    return path.is_file() and path.suffix != ".html" and sidecar_path(path).is_file()


def read_input(path: Path, via: Path | None = None) -> ReportInput:
    """Recognise and check the input ``path`` (see the module docstring).

    Raises
    ------
    InputError
        No such file or folder, nothing the report reads, a damaged manifest or record,
        a file the manifest needs that is missing (one line naming the input).
    """
    path = Path(path)
    if not path.exists():
        raise InputError(f"{path}: no such file or folder")
    if path.is_dir():
        if (path / "run.json").is_file():
            return _run(path, via)
        if (path / "manifest.json").is_file():
            return _manifest_input(path, via)
        if (path / "config.json").is_file():
            return _model(path, via)
        raise InputError(
            f"{path}: not a kmervae output the report reads (no run.json, manifest.json, "
            f"config.json or pipeline.json); {EXPECTED}"
        )
    if path.suffix == ".json":
        record = load_json(path)
        if record.get("format") == SIDECAR_FORMAT:
            return ReportInput("table", path, path, record, via)
        if "protocol" in record:
            return _evaluation(path, record, via)
        raise InputError(f"{path}: not a kmervae evaluation result or sidecar; {EXPECTED}")
    side = sidecar_path(path)
    if side.is_file():
        record = load_json(side)
        if record.get("format") != SIDECAR_FORMAT:
            raise InputError(f"{side}: not a kmervae sidecar (format {record.get('format')!r})")
        return ReportInput("table", path, side, record, via)
    raise InputError(f"{path}: not a kmervae output the report reads; {EXPECTED}")


def _manifest_input(path: Path, via: Path | None) -> ReportInput:
    from kmervae.io.manifest import read_json_manifest

    file = path / "manifest.json"
    found = load_json(file).get("format")
    kinds = _manifest_kinds()
    if found not in kinds:
        raise InputError(
            f"{path}: a manifest of format {found!r}, which the report does not read; {EXPECTED}"
        )
    kind, schema, what = kinds[found]
    record = read_json_manifest(file, str(found), schema, what)
    item = ReportInput(kind, path, file, record, via)
    if kind == "map":
        from kmervae.viz.maps import open_map

        item.data["map"] = open_map(path)
    elif kind == "clusters":
        _check_clusters(item)
    elif kind == "compare":
        _check_compare(item)
    elif kind == "embeddings":
        from kmervae.io.embeddings import open_embeddings

        item.data["embeddings"] = open_embeddings(path)
    return item


def _run(path: Path, via: Path | None) -> ReportInput:
    from kmervae.errors import KmervaeError
    from kmervae.model.config import read_run_record
    from kmervae.model.run_folder import history_from_one

    try:
        record = read_run_record(path)
    except KmervaeError as exc:
        raise InputError(str(exc)) from None
    if "train_config" not in record:
        raise InputError(f"{path}/run.json: not a kmervae training run (no train_config)")
    history = path / "history.jsonl"
    if not history.is_file():
        raise InputError(f"{path}: a training run without history.jsonl")
    rows = []
    try:
        lines = history.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{history}: cannot be read ({exc})") from None
    for line in lines:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut short by a kill, as training itself reads it
        if isinstance(row, dict):
            rows.append(row)
    item = ReportInput("run", path, path / "run.json", record, via)
    item.data["history"] = [r for r in history_from_one(rows) if isinstance(r.get("epoch"), int)]
    card = path / "model" / "card.json"
    if card.is_file():
        item.data["card"] = load_json(card)
    return item


def _model(path: Path, via: Path | None) -> ReportInput:
    from kmervae.model.config import read_model_folder

    config = read_model_folder(path)
    card_file = path / "card.json"
    card = load_json(card_file) if card_file.is_file() else {}
    record = {**card, "config": config}
    if "provenance" not in record and isinstance(config.get("provenance"), dict):
        record["provenance"] = config["provenance"]
    return ReportInput("model", path, card_file if card else path / "config.json", record, via)


def _evaluation(path: Path, record: dict[str, Any], via: Path | None) -> ReportInput:
    from kmervae.evaluate.matrix import PROTOCOLS

    protocol = record.get("protocol")
    if protocol not in PROTOCOLS:
        raise InputError(
            f"{path}: an evaluation of protocol {protocol!r}, which the report does not read "
            f"({', '.join(PROTOCOLS)})"
        )
    if "results" in record:
        results = record["results"]
        if not isinstance(results, list) or not all(isinstance(r, dict) for r in results):
            raise InputError(f"{path}: 'results' is not a list of results")
        for i, result in enumerate(results, 1):
            check_result(path, result, where=f"result {i}: ")
        return ReportInput("matrix", path, path, record, via)
    check_result(path, record)
    return ReportInput("evaluation", path, path, record, via)


#: the key every result of a protocol holds
RESULT_KEYS = {
    "fidelity": "spearman",
    "taxonomy": "agreement",
    "reconstruction": "mse",
    "clusters": "rows",
}


def check_result(path: Path, result: dict[str, Any], where: str = "") -> None:
    """Raise an InputError unless ``result`` is a result of a known protocol."""
    protocol = result.get("protocol")
    key = RESULT_KEYS.get(str(protocol))
    if key is None:
        raise InputError(f"{path}: {where}unknown protocol {protocol!r}")
    if key not in result:
        raise InputError(f"{path}: {where}a {protocol} result without {key!r}")


def _check_clusters(item: ReportInput) -> None:
    from kmervae.evaluate.cluster_inputs import open_cluster_file

    item.data["clustering"] = open_cluster_file(item.path)
    entries = [e for e in item.record.get("clusterings", []) if isinstance(e, dict)]
    for entry in entries:
        stats = entry.get("stats")
        if stats and not (item.path / str(stats)).is_file():
            raise InputError(f"{item.path / str(stats)}: listed in {item.source} but missing")
    if not (item.path / "summary.tsv").is_file():
        raise InputError(f"{item.path}: a cluster folder without summary.tsv")


def _check_compare(item: ReportInput) -> None:
    files = item.record.get("files", [])
    if not isinstance(files, list):
        raise InputError(f"{item.source}: 'files' is not a list")
    for name in files:
        if not (item.path / str(name)).is_file():
            raise InputError(f"{item.path / str(name)}: listed in {item.source} but missing")


# -------------------------------------------------------------------------------- pipelines


def _stage_outputs(folder: Path, record: dict[str, Any]) -> Iterator[Path]:
    """The outputs that ``pipeline.json`` names: ``stages`` a list or a mapping of stages,
    each with ``output`` a path (or a list of paths) relative to the folder."""
    stages = record.get("stages")
    if isinstance(stages, dict):
        items = list(stages.values())
    elif isinstance(stages, list):
        items = stages
    else:
        return
    for stage in items:
        if not isinstance(stage, dict):
            continue
        outputs = stage.get("output", stage.get("outputs"))
        for output in outputs if isinstance(outputs, list) else [outputs]:
            if isinstance(output, str) and output:
                yield folder / output


def pipeline_inputs(folder: Path) -> list[ReportInput]:
    """The inputs a ``kmervae pipeline`` folder holds: the pipeline itself, the output of
    each stage that ``pipeline.json`` lists (where it exists), and any other entry of the
    folder (a subfolder or a JSON file) that is an input the report reads."""
    file = folder / "pipeline.json"
    record = load_json(file)
    found = [ReportInput("pipeline", folder, file, record)]
    seen = {folder.resolve()}
    listed = list(_stage_outputs(folder, record))
    for path in listed:
        if not path.exists():
            log.warning("%s: stage output %s is not there (not run yet?)", file, path)
    children = sorted(p for p in folder.iterdir() if not p.name.startswith("."))
    for path in [*listed, *children]:
        key = path.resolve()
        if key in seen or not path.exists() or (path / "pipeline.json").exists():
            continue
        seen.add(key)
        if not _recognised(path):
            log.debug("%s: not a report input, passed over", path)
            continue
        found.append(read_input(path, via=folder))
    if len(found) == 1:
        raise InputError(f"{folder}: a pipeline folder with no output the report reads yet")
    return found


def resolve_inputs(paths: Sequence[Path]) -> list[ReportInput]:
    """Every input named (pipeline folders opened up), each once, in the order given."""
    found: list[ReportInput] = []
    seen: set[Path] = set()
    for path in paths:
        path = Path(path)
        if path.is_dir() and (path / "pipeline.json").is_file():
            items = pipeline_inputs(path)
        else:
            items = [read_input(path)]
        for item in items:
            key = item.path.resolve()
            if key not in seen:
                seen.add(key)
                found.append(item)
    return found


def of_kind(inputs: Sequence[ReportInput], *kinds: str) -> list[ReportInput]:
    return [i for i in inputs if i.kind in kinds]


def recorded_checksums(record: Any, prefix: str = "") -> Iterator[tuple[str, str]]:
    """(where, value) of every checksum a manifest records: keys ending in ``sha256`` and
    model fingerprints, outside its provenance block."""
    if isinstance(record, dict):
        for key, value in record.items():
            where = f"{prefix}.{key}" if prefix else str(key)
            if key == "provenance":
                continue
            if isinstance(value, str) and (
                str(key).endswith("sha256") or str(key).endswith("fingerprint")
            ):
                yield where, value
            elif isinstance(value, dict | list):
                yield from recorded_checksums(value, where)
    elif isinstance(record, list):
        for i, value in enumerate(record):
            yield from recorded_checksums(value, f"{prefix}[{i}]")
