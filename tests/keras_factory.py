"""Write Keras-3-like ``.keras`` encoder files from a torch Encoder, without Keras.

The layout copies the research code's real file (tests read it from
``shared/data/legacy_keras``): ``config.json`` with a functional layer graph,
``metadata.json``, and ``model.weights.h5`` with one ``layers/<class_name_N>/vars`` group per
layer (datasets ``0..N``, the ``vars`` group carrying the layer name as attribute).
"""

from __future__ import annotations

import io
import json
import zipfile
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import nn

from kmervae.model.keras_import import keras_snake_case
from kmervae.model.vae import Encoder


def _tensor(source: str, width: int) -> dict[str, Any]:
    return {
        "class_name": "__keras_tensor__",
        "config": {"shape": [None, width], "dtype": "float32", "keras_history": [source, 0, 0]},
    }


def _layer(class_name: str, name: str, config: dict[str, Any], args: Any) -> dict[str, Any]:
    module = "keras.layers" if class_name not in ("ClipLayer", "Sampling") else "VAE_orig"
    return {
        "module": module,
        "class_name": class_name,
        "config": {"name": name, "trainable": True, **config},
        "registered_name": None if module == "keras.layers" else class_name,
        "name": name,
        "inbound_nodes": [] if args is None else [{"args": args, "kwargs": {}}],
    }


def write_keras_encoder(
    path: Path,
    encoder: Encoder,
    *,
    names: dict[str, str] | None = None,
    store_names: bool = True,
    heads_first: str = "z_log_var",
    clip: bool = True,
    sampling: bool = True,
    keras_version: str = "3.15.1",
) -> Path:
    """Save ``encoder`` (eval-mode weights) as a Keras 3 functional encoder ``.keras`` zip.

    ``names`` renames layers (default names follow the research code: enc_dense1, enc_bn1,
    enc_relu1, …, z_mean, z_log_var, z_log_var_clip, sampling); ``store_names=False`` leaves
    the layer names off the HDF5 groups (older Keras 3), so only the class-based group
    names identify them.
    """
    names = names or {}
    config = encoder.config
    rename = lambda n: names.get(n, n)  # noqa: E731
    layers: list[dict[str, Any]] = []
    weights: list[tuple[str, str, list[np.ndarray]]] = []  # (class, layer name, vars)
    inp = rename("encoder_input")
    layers.append(
        _layer(
            "InputLayer",
            inp,
            {"batch_shape": [None, config.n_features], "dtype": "float32", "sparse": False},
            None,
        )
    )
    weights.append(("InputLayer", inp, []))
    prev, width = inp, config.n_features
    block = 0
    modules = list(encoder.body)
    for module in modules:
        if isinstance(module, nn.Linear):
            block += 1
            name = rename(f"enc_dense{block}")
            units = module.out_features
            layers.append(
                _layer(
                    "Dense",
                    name,
                    {"units": units, "activation": "linear", "use_bias": True},
                    [_tensor(prev, width)],
                )
            )
            kernel = module.weight.detach().numpy().T.copy()
            weights.append(("Dense", name, [kernel, module.bias.detach().numpy()]))
            prev, width = name, units
        elif isinstance(module, nn.BatchNorm1d):
            name = rename(f"enc_bn{block}")
            layers.append(
                _layer(
                    "BatchNormalization",
                    name,
                    {
                        "axis": -1,
                        "momentum": 1.0 - module.momentum,
                        "epsilon": module.eps,
                        "center": True,
                        "scale": True,
                    },
                    [_tensor(prev, width)],
                )
            )
            arrays = [module.weight, module.bias, module.running_mean, module.running_var]
            weights.append(("BatchNormalization", name, [a.detach().numpy() for a in arrays]))
            prev = name
        elif isinstance(module, nn.LeakyReLU):
            name = rename(f"enc_relu{block}")
            layers.append(
                _layer(
                    "LeakyReLU",
                    name,
                    {"negative_slope": module.negative_slope},
                    [_tensor(prev, width)],
                )
            )
            weights.append(("LeakyReLU", name, []))
            prev = name
        elif isinstance(module, nn.Dropout):
            name = rename(f"enc_drop{block}")
            layers.append(_layer("Dropout", name, {"rate": module.p}, [_tensor(prev, width)]))
            weights.append(("Dropout", name, []))
            prev = name
    heads = {"z_mean": encoder.mu, "z_log_var": encoder.logvar}
    order = [heads_first, *(h for h in heads if h != heads_first)]
    for head in order:
        linear = heads[head]
        name = rename(head)
        layers.append(
            _layer(
                "Dense",
                name,
                {"units": config.latent, "activation": "linear", "use_bias": True},
                [_tensor(prev, width)],
            )
        )
        kernel = linear.weight.detach().numpy().T.copy()
        weights.append(("Dense", name, [kernel, linear.bias.detach().numpy()]))
    logvar_out = rename("z_log_var")
    if clip:
        name = rename("z_log_var_clip")
        layers.append(
            _layer(
                "ClipLayer",
                name,
                {"min_value": config.logvar_min, "max_value": config.logvar_max},
                [_tensor(logvar_out, config.latent)],
            )
        )
        weights.append(("ClipLayer", name, []))
        logvar_out = name
    outputs = [[rename("z_mean"), 0, 0], [logvar_out, 0, 0]]
    if sampling:
        name = rename("sampling")
        args = [[_tensor(rename("z_mean"), config.latent), _tensor(logvar_out, config.latent)]]
        layers.append(_layer("Sampling", name, {}, args))
        weights.append(("Sampling", name, []))
        outputs.append([name, 0, 0])
    graph = {
        "module": "keras.src.models.functional",
        "class_name": "Functional",
        "config": {
            "name": "encoder",
            "trainable": True,
            "layers": layers,
            "input_layers": [inp, 0, 0],
            "output_layers": outputs,
        },
        "registered_name": "Functional",
        "build_config": {"input_shape": None},
        "compile_config": {},
    }
    h5_bytes = io.BytesIO()
    with h5py.File(h5_bytes, "w") as h5:
        counts: dict[str, int] = {}
        for class_name, name, arrays in weights:
            base = keras_snake_case(class_name)
            key = base if base not in counts else f"{base}_{counts[base] + 1}"
            counts[base] = counts.get(base, -1) + 1
            group = h5.create_group(f"layers/{key}/vars")
            if store_names:
                group.attrs["name"] = name
            for i, array in enumerate(arrays):
                group.create_dataset(str(i), data=np.asarray(array, np.float32))
        h5.create_group("vars").attrs["name"] = "encoder"
    metadata = {"keras_version": keras_version, "date_saved": "2026-01-01@00:00:00"}
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps(metadata))
        archive.writestr("config.json", json.dumps(graph))
        archive.writestr("model.weights.h5", h5_bytes.getvalue())
    return path


def randomised_encoder(encoder: Encoder, seed: int = 0) -> Encoder:
    """Give BatchNorm non-trivial statistics and affine terms, so a mix-up would show."""
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for module in encoder.modules():
            if isinstance(module, nn.BatchNorm1d):
                n = module.num_features
                module.weight.copy_(1 + 0.3 * torch.randn(n, generator=generator))
                module.bias.copy_(0.3 * torch.randn(n, generator=generator))
                module.running_mean.copy_(0.5 * torch.randn(n, generator=generator))
                module.running_var.copy_(0.5 + torch.rand(n, generator=generator))
    return encoder.eval()
