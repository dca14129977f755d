"""Optional dependencies: imported when first needed, a missing one reported as one line
with the exact install command.

``pip install kmervae`` alone profiles, embeds with an ``.onnx`` encoder (ONNX Runtime),
indexes, searches, evaluates, clusters and maps. The extras add:

=========  ==============================================================================
``train``  PyTorch: ``train``, ``embed`` and ``evaluate`` with a model folder or ``.pt``
``keras``  h5py (and PyTorch): ``import-keras``
``export`` ONNX and onnxscript (and PyTorch): ``export``
``dask``   Dask's distributed scheduler: ``search --dask``, ``knn --dask``
``umap``   umap-learn: ``map --method umap``
``chroma`` ChromaDB: ``index build --from-chroma``
=========  ==============================================================================
"""

from __future__ import annotations

import sys
from types import ModuleType

from kmervae.errors import KmervaeError

#: how a message names each optional module
_NAMES = {
    "torch": "PyTorch",
    "h5py": "h5py",
    "onnx": "ONNX",
    "onnxscript": "onnxscript",
    "distributed": "Dask's distributed scheduler",
    "umap": "umap-learn",
    "chromadb": "ChromaDB",
}


def install_command(extra: str) -> str:
    """The command that installs an extra: ``pip install 'kmervae[EXTRA]'``."""
    return f"pip install 'kmervae[{extra}]'"


def require(module: str, *, extra: str, purpose: str) -> ModuleType:
    """Import an optional module, or explain in one line how to install it.

    Parameters
    ----------
    module : the module to import (``"torch"``, ``"h5py"``, ``"onnx"`` …).
    extra : the kmervae extra that installs it (``"train"``, ``"keras"``, ``"export"`` …).
    purpose : what needs it, the start of the message (``"training"``).

    Returns
    -------
    The imported module.

    Raises
    ------
    KmervaeError
        ``PURPOSE needs NAME: pip install 'kmervae[EXTRA]'``; where the module is there but a
        module it needs is not, that one is named too.
    """
    try:
        # __import__ rather than importlib: a test that patches builtins.__import__ sees it
        __import__(module)
    except ImportError as exc:
        name = _NAMES.get(module, module)
        missing = exc.name or module
        if missing.split(".")[0] != module.split(".")[0]:
            name = f"{name} ({missing} is missing)"
        raise KmervaeError(f"{purpose} needs {name}: {install_command(extra)}") from None
    return sys.modules[module]
