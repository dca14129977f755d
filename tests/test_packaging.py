"""Packaging: the extras, the one-line install hint, and the files that install kmervae
elsewhere (Dockerfile, conda environment, bioconda recipe, citation)."""

from __future__ import annotations

import builtins
import json
import pkgutil
import re
import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

import kmervae
from kmervae._extras import install_command, require
from kmervae.cli import main
from kmervae.errors import KmervaeError

yaml = pytest.importorskip("yaml")

ROOT = Path(__file__).resolve().parents[1]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
PROJECT = PYPROJECT["project"]
EXTRAS = PROJECT["optional-dependencies"]

#: what the install without extras must not bring, and the extra that brings each
OPTIONAL = {
    "torch": "train",
    "safetensors": "train",
    "h5py": "keras",
    "onnx": "export",
    "onnxscript": "export",
    "dask": "dask",
    "umap-learn": "umap",
    "chromadb": "chroma",
}
#: conda names of the PyPI packages whose names differ
CONDA_NAMES = {
    "igraph": "python-igraph",
    "isal": "python-isal",
    "matplotlib": "matplotlib-base",
    "opentsne": "opentsne",
}


def requirement(text: str) -> tuple[str, str]:
    """``"numpy>=1.26,<3"`` -> ``("numpy", ">=1.26,<3")`` (name lower case, extras dropped)."""
    match = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)(\[[^\]]*\])?\s*(.*?)\s*", text)
    assert match, text
    return match.group(1).lower(), match.group(3).replace(" ", "")


def self_extras(requirements: list[str]) -> set[str]:
    """The extras of kmervae itself that a list of requirements pulls in."""
    found: set[str] = set()
    for text in requirements:
        match = re.fullmatch(r"kmervae\[([^\]]+)\]", text.strip())
        if match:
            found |= {e.strip() for e in match.group(1).split(",")}
    return found


def expand(extra: str) -> set[str]:
    """The package names an extra brings, through the extras it names."""
    names: set[str] = set()
    for text in EXTRAS[extra]:
        inner = self_extras([text])
        if inner:
            for other in inner:
                names |= expand(other)
        else:
            names.add(requirement(text)[0])
    return names


# -------------------------------------------------------------------------- the extras


def test_the_install_without_extras_brings_no_optional_package():
    base = {requirement(text)[0] for text in PROJECT["dependencies"]}
    assert not base & set(OPTIONAL)
    assert {"onnxruntime", "numpy", "lancedb", "faiss-cpu"} <= base


def test_each_extra_brings_its_packages():
    assert set(EXTRAS) >= {"train", "keras", "export", "dask", "umap", "chroma", "all", "dev"}
    for package, extra in OPTIONAL.items():
        assert package in expand(extra), (package, extra)
    assert "torch" in expand("keras") and "torch" in expand("export")
    runtime = set(EXTRAS) - {"all", "dev"}
    assert self_extras(EXTRAS["all"]) == runtime
    assert "all" in self_extras(EXTRAS["dev"])
    assert {"pytest", "hypothesis", "ruff", "mypy", "pyyaml"} <= expand("dev")


def test_require_returns_the_module():
    assert require("json", extra="train", purpose="testing") is json


def test_a_missing_module_is_one_line_with_the_install_command():
    with pytest.raises(KmervaeError) as caught:
        require("kmervae_no_such_module", extra="train", purpose="this test")
    message = str(caught.value)
    assert message == "this test needs kmervae_no_such_module: pip install 'kmervae[train]'"
    assert "\n" not in message
    assert install_command("keras") == "pip install 'kmervae[keras]'"


def test_a_module_whose_own_dependency_is_missing_names_both(monkeypatch):
    real_import = builtins.__import__

    def broken(name, *args, **kwargs):
        if name == "kmervae_fake_parent":
            raise ModuleNotFoundError("No module named 'fake_dep'", name="fake_dep")
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", broken)
    with pytest.raises(KmervaeError) as caught:
        require("kmervae_fake_parent", extra="umap", purpose="x")
    assert str(caught.value) == (
        "x needs kmervae_fake_parent (fake_dep is missing): pip install 'kmervae[umap]'"
    )


def test_train_without_torch_says_which_extra(tmp_path, without_torch, capsys):
    code = main(["train", str(tmp_path / "data.kmv"), "-o", str(tmp_path / "run"), "-q"])
    assert code == 1
    assert capsys.readouterr().err == (
        "kmervae train: error: training needs PyTorch: pip install 'kmervae[train]'\n"
    )
    assert not (tmp_path / "run").exists()


#: the modules of kmervae.model that the commands without PyTorch use; the others (the
#: network, training, model files, export) and evaluate.reconstruction may import torch
MODEL_WITHOUT_TORCH = {
    "kmervae.model",
    "kmervae.model.config",
    "kmervae.model.data",
    "kmervae.model.device",
    "kmervae.model.embed",
    "kmervae.model.onnx_runtime",
    "kmervae.model.pca",
    "kmervae.model.pca_folder",
}


def needs_an_extra(module: str) -> bool:
    if module == "kmervae.evaluate.reconstruction":
        return True
    return module.startswith("kmervae.model.") and module not in MODEL_WITHOUT_TORCH


HIDE_OPTIONAL = """
import sys
HIDDEN = {"torch", "h5py", "onnx", "onnxscript", "dask", "distributed", "safetensors",
          "umap", "chromadb"}

class Hide:
    def __init__(self, inner):
        self.inner = inner

    def find_spec(self, name, path=None, target=None):
        if name.split(".")[0] in HIDDEN:
            return None
        return self.inner.find_spec(name, path, target)

    def __getattr__(self, attribute):
        return getattr(self.inner, attribute)

sys.meta_path[:] = [Hide(f) if hasattr(f, "find_spec") else f for f in sys.meta_path]
"""


def test_without_the_extras_every_other_module_imports_and_every_help_prints():
    """In a child process where torch, h5py, onnx, Dask … cannot be found: the command line
    starts, prints each subcommand's help, and every module but those of needs_an_extra imports
    (so none of them imports an optional package at its top)."""
    skipped = {
        info.name
        for info in pkgutil.walk_packages(kmervae.__path__, "kmervae.")
        if needs_an_extra(info.name) or info.name.endswith("__main__")
    }
    script = HIDE_OPTIONAL + textwrap.dedent(
        f"""
        import contextlib, importlib, io, json, pkgutil
        import kmervae
        from kmervae.cli import build_parser

        failed = {{}}
        for info in pkgutil.walk_packages(kmervae.__path__, "kmervae."):
            if info.name in {sorted(skipped)!r}:
                continue
            try:
                importlib.import_module(info.name)
            except ImportError as exc:
                failed[info.name] = str(exc)
        parser = build_parser()
        commands = next(
            a.choices for a in parser._actions if getattr(a, "choices", None) is not None
            and isinstance(a.choices, dict)
        )
        helps = {{}}
        for command in commands:
            with contextlib.redirect_stdout(io.StringIO()):
                try:
                    build_parser().parse_args([command, "--help"])
                except SystemExit as exc:
                    helps[command] = exc.code
        print(json.dumps({{"failed": failed, "helps": helps,
                           "loaded": sorted(m for m in HIDDEN if m in sys.modules)}}))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["failed"] == {}
    assert result["loaded"] == []
    assert len(result["helps"]) >= 14
    assert set(result["helps"].values()) == {0}, result["helps"]


def test_a_pca_model_is_fitted_embedded_and_evaluated_without_the_extras(tmp_path):
    """fit-pca, embed and evaluate with a PCA model folder where torch, safetensors … cannot
    be found."""
    import numpy as np

    from kmervae.io.dataset import DatasetWriter
    from kmervae.kmers.layout import FeatureLayout

    layout = FeatureLayout((3, 2, 1))
    rng = np.random.default_rng(0)
    for name, n in (("ds", 120), ("test", 60)):
        with DatasetWriter(tmp_path / name, layout) as writer:
            x = np.concatenate([rng.dirichlet(np.ones(w), n) for w in layout.widths], axis=1)
            ids = [f"{name}{i}" for i in range(n)]
            writer.append(x.astype(np.float32), np.full(n, 1000, np.int64), ids)
            writer.close()
    script = HIDE_OPTIONAL + textwrap.dedent(
        f"""
        import os
        from kmervae.cli import main
        os.chdir({str(tmp_path)!r})
        for argv in (
            ["fit-pca", "ds", "-o", "pca", "--components", "4", "-q"],
            ["embed", "pca", "test", "-o", "emb", "-q"],
            ["evaluate", "fidelity", "pca", "test", "-k", "5", "--queries", "10",
             "--bootstrap", "0", "-q"],
        ):
            assert main(argv) == 0, argv
        print(sorted(m for m in HIDDEN if m in sys.modules))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=600, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"
    assert (tmp_path / "emb" / "embeddings.npy").is_file()


# ------------------------------------------------------------------------ Dockerfile

DOCKER_INSTRUCTIONS = {
    "ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "FROM", "HEALTHCHECK",
    "LABEL", "ONBUILD", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR",
}  # fmt: skip


def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) of a Dockerfile, continuation lines joined."""
    instructions = []
    logical = ""
    for line in text.splitlines():
        stripped = line.strip()
        if not logical and (not stripped or stripped.startswith("#")):
            continue
        if logical and stripped.startswith("#"):
            continue  # a comment inside a continued instruction
        if stripped.endswith("\\"):
            logical += stripped[:-1] + " "
            continue
        logical += stripped
        keyword, _, arguments = logical.partition(" ")
        instructions.append((keyword, arguments.strip()))
        logical = ""
    assert not logical, "the Dockerfile ends inside a continued line"
    return instructions


def test_dockerfile():
    instructions = dockerfile_instructions((ROOT / "Dockerfile").read_text())
    keywords = [keyword for keyword, _ in instructions]
    assert all(k in DOCKER_INSTRUCTIONS for k in keywords), keywords
    assert keywords[0] == "FROM" and keywords.count("FROM") == 1
    image = instructions[0][1]
    name, _, tag = image.partition(":")
    assert name == "python" and re.match(r"3\.11[.\-]", tag) and "latest" not in tag, image
    runs = [arguments for keyword, arguments in instructions if keyword == "RUN"]
    assert any(re.search(r"apt-get install .*\bmcl\b", run) for run in runs)
    torch_at = next(i for i, run in enumerate(runs) if "torch==" in run)
    assert "--index-url https://download.pytorch.org/whl/cpu" in runs[torch_at]
    train_at = next(i for i, run in enumerate(runs) if ".[train]" in run)
    assert torch_at < train_at
    for keyword, arguments in instructions:
        if keyword == "COPY":
            *sources, _ = arguments.split()
            assert all((ROOT / source).exists() for source in sources), arguments
    entrypoint = [arguments for keyword, arguments in instructions if keyword == "ENTRYPOINT"]
    assert len(entrypoint) == 1 and json.loads(entrypoint[0]) == ["kmervae"]


# -------------------------------------------------------------------------- CITATION


def test_citation_cff():
    citation = yaml.safe_load((ROOT / "CITATION.cff").read_text())
    assert citation["cff-version"] == "1.2.0"
    assert {"cff-version", "message", "title", "authors"} <= set(citation)
    assert citation["title"] == "kmervae"
    assert str(citation["version"]) == PROJECT["version"]
    assert citation["license"] == PROJECT["license"] == "MIT"
    assert citation["authors"] == [{"name": "kmervae developers"}]


# ------------------------------------------------------------------- conda and bioconda


def render_jinja(text: str) -> str:
    """Enough of conda-build's Jinja for YAML parsing: ``{% set %}`` variables substituted,
    any other ``{{ … }}`` expression replaced by a placeholder."""
    variables = dict(re.findall(r'{%\s*set\s+(\w+)\s*=\s*"([^"]*)"\s*%}', text))
    text = re.sub(r"{%.*?%}", "", text)

    def value(match: re.Match) -> str:
        expression = match.group(1).strip()
        return variables.get(expression, "JINJA")

    return re.sub(r"{{(.*?)}}", value, text)


def conda_requirements(items: list) -> dict[str, str]:
    """conda ``name spec`` strings -> {name: spec}."""
    found = {}
    for item in items:
        if isinstance(item, str):
            name, _, spec = item.partition(" ")
            found[name.lower()] = spec.replace(" ", "")
    return found


def test_conda_environment():
    environment = yaml.safe_load((ROOT / "environment.yml").read_text())
    assert environment["channels"] == ["conda-forge", "bioconda"]
    dependencies = environment["dependencies"]
    conda = conda_requirements(dependencies)
    assert conda["python"] == PROJECT["requires-python"]
    assert "mcl" in conda and "pip" in conda
    assert "pytorch-cpu" in conda and "pytorch" not in conda  # the CPU build
    pip = next(item["pip"] for item in dependencies if isinstance(item, dict))
    assert pip == ["-e .[train]"]
    for text in PROJECT["dependencies"]:
        name, spec = requirement(text)
        name = CONDA_NAMES.get(name, name)
        if name in conda:  # the rest come from PyPI through the pip line
            assert conda[name] == spec, name


def test_bioconda_recipe():
    text = (ROOT / "packaging" / "meta.yaml").read_text()
    recipe = yaml.safe_load(render_jinja(text))
    assert recipe["package"] == {"name": "kmervae", "version": PROJECT["version"]}
    assert recipe["build"]["noarch"] == "python"
    assert recipe["build"]["entry_points"] == [f"kmervae = {PROJECT['scripts']['kmervae']}"]
    run = conda_requirements(recipe["requirements"]["run"])
    assert run["python"] == PROJECT["requires-python"]
    assert "mcl" in run
    for text in PROJECT["dependencies"] + EXTRAS["train"]:
        name, spec = requirement(text)
        name = {"torch": "pytorch"}.get(name, CONDA_NAMES.get(name, name))
        assert run.get(name) == spec, name
    assert "kmervae --help" in recipe["test"]["commands"]
    assert recipe["about"]["license"] == "MIT"


# ------------------------------------------------------------------------- CHANGELOG


def test_changelog_has_unreleased_and_this_version():
    headings = re.findall(r"^## \[([^\]]+)\]", (ROOT / "CHANGELOG.md").read_text(), re.M)
    assert headings[0] == "Unreleased"
    assert PROJECT["version"] in headings


def _readme_blocks(heading: str) -> list[str]:
    """The ``bash`` code blocks of the README section ``heading``."""
    text = (ROOT / "README.md").read_text()
    section = text.split(f"\n## {heading}\n", 1)[1].split("\n## ", 1)[0]
    return re.findall(r"```bash\n(.*?)```", section, flags=re.S)


def test_ci_runs_the_readme_set_up_verbatim():
    ci = (ROOT / ".ci" / "run").read_text().splitlines()
    blocks = _readme_blocks("Set-up")
    develop = blocks[-1].strip().splitlines()
    assert develop[-1] == "python -m pytest -q"
    for line in develop[1:]:  # the first line makes the virtual environment
        assert line in ci, f"README set-up line {line!r} is not in .ci/run"
    # the CPU build's command is the same in both blocks that install PyTorch
    assert all(develop[1] in block for block in blocks if "torch" in block)
