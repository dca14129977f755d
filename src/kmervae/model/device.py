"""Which torch device a request names: the one definition used by training and embedding.

A device is named ``auto`` (CUDA, else Apple MPS, else the CPU), ``cpu``, ``cuda``,
``cuda:N`` (N below the number of CUDA devices) or ``mps``. Torch is imported inside the
function only, so that modules on the torch-free path (embedding with ONNX Runtime) can
import this one.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from kmervae.errors import KmervaeError

if TYPE_CHECKING:
    import torch

#: the device names, less the ``cuda:N`` form
DEVICES = ("auto", "cpu", "cuda", "mps")


def check_device_name(spec: str) -> None:
    """Refuse a device name that is none of :data:`DEVICES` or ``cuda:N``, without importing
    torch or looking at the hardware.

    Raises
    ------
    KmervaeError
        One line naming the device and the accepted names.
    """
    kind, colon, index = str(spec).partition(":")
    if kind not in DEVICES or (colon and (kind != "cuda" or not index.isdigit())):
        raise KmervaeError(f"device {spec}: unknown device (auto, cpu, cuda, cuda:N or mps)")


def resolve_device(spec: str = "auto") -> torch.device:
    """The torch device that ``spec`` names, checked to exist on this machine.

    Parameters
    ----------
    spec
        ``auto`` (CUDA, else MPS, else CPU), ``cpu``, ``cuda``, ``cuda:N`` or ``mps``.

    Raises
    ------
    KmervaeError
        One line: the name is unknown, PyTorch sees no CUDA GPU (or no Apple GPU), or N is
        not below the number of CUDA devices.
    """
    import torch

    check_device_name(spec)
    mps = getattr(torch.backends, "mps", None)
    has_mps = bool(mps is not None and mps.is_available())
    if spec == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        return torch.device("mps" if has_mps else "cpu")
    kind, colon, index = spec.partition(":")
    if kind == "cuda":
        if not torch.cuda.is_available():
            raise KmervaeError(f"device {spec}: PyTorch sees no CUDA GPU here")
        count = torch.cuda.device_count()
        if colon and int(index) >= count:
            raise KmervaeError(
                f"device {spec}: no such CUDA device (this machine has {count}: "
                f"cuda:0 to cuda:{count - 1})"
            )
    if kind == "mps" and not has_mps:
        raise KmervaeError(f"device {spec}: PyTorch sees no Apple GPU (MPS) here")
    return torch.device(spec)
