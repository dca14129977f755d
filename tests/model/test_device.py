"""Device names: one definition for training and embedding, each refusal one line."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from kmervae.errors import KmervaeError
from kmervae.model.config import RuntimeOptions
from kmervae.model.device import check_device_name, resolve_device
from kmervae.model.embed import load_encoder
from kmervae.model.train import check_runtime


def test_cpu_and_auto():
    assert resolve_device("cpu") == torch.device("cpu")
    if torch.cuda.is_available():
        assert resolve_device("auto") == torch.device("cuda")
    else:
        assert resolve_device("auto").type in ("cpu", "mps")


@pytest.mark.parametrize("name", ["tpu", "cuda:", "cuda:x", "cpu:0", "mps:1", "CUDA", ""])
def test_unknown_names_are_one_line(name):
    with pytest.raises(KmervaeError, match="unknown device") as err:
        resolve_device(name)
    assert "\n" not in str(err.value) and "--" not in str(err.value)
    with pytest.raises(KmervaeError, match="unknown device"):
        check_device_name(name)


def test_cuda_absent(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    for name in ("cuda", "cuda:0"):
        with pytest.raises(KmervaeError, match=f"device {name}: PyTorch sees no CUDA GPU"):
            resolve_device(name)


def test_cuda_index_must_exist(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve_device("cuda:1") == torch.device("cuda:1")
    with pytest.raises(KmervaeError, match=r"cuda:2: no such CUDA device .*cuda:0 to cuda:1"):
        resolve_device("cuda:2")


def test_mps_absent(monkeypatch):
    monkeypatch.setattr(torch.backends.mps, "is_available", lambda: False)
    with pytest.raises(KmervaeError, match="no Apple GPU"):
        resolve_device("mps")


def test_training_and_embedding_use_the_same_checks(monkeypatch, tmp_path):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 1)
    with pytest.raises(KmervaeError, match="no such CUDA device"):
        check_runtime(RuntimeOptions(device="cuda:3"))
    # embedding refuses an unknown name before it reads the model
    with pytest.raises(KmervaeError, match="unknown device"):
        load_encoder(tmp_path, device="gpu")


def test_the_check_of_names_needs_no_torch():
    code = (
        "import sys; from kmervae.model.device import check_device_name; "
        "check_device_name('cuda:3'); print('torch' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
