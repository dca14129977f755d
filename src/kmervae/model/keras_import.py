"""Import encoders saved by the research code (Keras 3 ``.keras`` files) without Keras.

A Keras 3 ``.keras`` file is a zip holding ``config.json`` (the layer graph),
``metadata.json`` (Keras version, save date) and ``model.weights.h5`` (the variables, one
HDF5 group per layer under ``layers/``, each with a ``vars`` group of datasets ``0..N`` in
the layer's variable order). The research encoder is a functional model::

    input (F) -> [Dense -> BatchNormalization -> LeakyReLU (-> Dropout)] x n
              -> Dense z_mean (latent)
              -> Dense z_log_var (latent) -> ClipLayer(min, max)
              -> Sampling (ignored: the embedding is z_mean)

The graph is walked from the input layer by its connections, so layer names do not matter;
the two heads are told apart by the clip layer, the sampling layer's argument order, their
names, or the model's output order, in that order of trust. Weights are found by the layer
name that Keras 3 stores on each ``vars`` group, falling back to the class-based group
names Keras gives the layers in order (``dense``, ``dense_1``, …).
"""

from __future__ import annotations

import io
import json
import logging
import re
import zipfile
import zlib
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import torch
from torch import nn

from kmervae._version import __version__
from kmervae.errors import InputError
from kmervae.kmers.layout import FeatureLayout
from kmervae.model.config import VAEConfig
from kmervae.model.vae import Encoder
from kmervae.provenance import file_sha256

log = logging.getLogger(__name__)

#: The standard k order; an imported encoder uses a suffix of it, found from its input width.
STANDARD_KS = (6, 5, 4, 3, 2, 1)
_KERAS_LEAKY_DEFAULT = 0.3  # Keras' default negative slope when the config omits it
_NO_CLIP = float(np.finfo(np.float32).max)  # clamp bounds that change no finite float32


@dataclass(frozen=True)
class KerasLayer:
    """One layer of a Keras functional model, as described by ``config.json``."""

    name: str
    class_name: str
    config: dict[str, Any]
    sources: tuple[str, ...]  # names of the layers feeding it, in argument order


@dataclass
class KerasEncoderSpec:
    """The research encoder found in a Keras graph, and the kmervae config it maps to."""

    config: VAEConfig
    dense: list[KerasLayer]  # hidden Dense layers, input side first
    batchnorm: list[KerasLayer]  # one per hidden Dense layer, or empty
    mu: KerasLayer
    logvar: KerasLayer
    clip: KerasLayer | None
    all_layers: list[KerasLayer] = field(default_factory=list)  # config.json order


@dataclass
class KerasImport:
    """An imported encoder (eval mode), its config, and the model card to save with it."""

    encoder: Encoder
    config: VAEConfig
    card: dict[str, Any]


def import_keras_encoder(
    path: str | Path,
    *,
    ks: tuple[int, ...] | None = None,
    provenance: dict[str, Any] | None = None,
) -> KerasImport:
    """Read a Keras 3 encoder file into a kmervae :class:`Encoder`.

    Parameters
    ----------
    path
        ``vae_encoder*.keras``: a zip with ``config.json``, ``metadata.json`` and
        ``model.weights.h5``.
    ks
        The k-groups of the input columns, in order. Default: the suffix of
        (6, 5, 4, 3, 2, 1) whose width equals the model's input width
        (2772 -> 6…1-mers, 692 -> 5…1-mers, 180 -> 4…1-mers, …).
    provenance
        Extra facts (e.g. the command line) recorded in the card's provenance.

    Returns
    -------
    KerasImport
        ``encoder`` maps raw frequency profiles, float32 (batch x F), to (mu, log var),
        float32 (batch x latent) each; the per-group CLR that the research code applied
        before Keras is part of it.

    Raises
    ------
    InputError
        The file is not a zip, lacks one of its members, or holds an architecture that does
        not map onto a kmervae encoder.
    """
    path = Path(path)
    graph, metadata, weights = read_keras_archive(path)
    spec = parse_keras_encoder(graph, ks=ks, source=path)
    try:
        h5 = h5py.File(io.BytesIO(weights), "r")
    except OSError as exc:
        raise InputError(f"{path}: model.weights.h5 is not a readable HDF5 file ({exc})") from None
    with h5:
        encoder = build_encoder(spec, h5, source=path)
    card = {
        "name": path.stem,
        "provenance": {
            "imported_from": path.name,
            "source_path": str(path.resolve()),
            "source_sha256": file_sha256(path),
            "keras_version": metadata.get("keras_version"),
            "keras_date_saved": metadata.get("date_saved"),
            "keras_model_name": graph.get("config", {}).get("name"),
            "converter": f"kmervae {__version__} import-keras (no TensorFlow or Keras)",
            "parts": "encoder only: the Keras file holds no decoder",
            **(provenance or {}),
        },
    }
    return KerasImport(encoder, spec.config, card)


def read_keras_archive(path: Path) -> tuple[dict[str, Any], dict[str, Any], bytes]:
    """The ``config.json`` and ``metadata.json`` (parsed) and ``model.weights.h5`` (bytes)."""
    if not path.is_file():
        raise InputError(f"{path}: no such file")
    if not zipfile.is_zipfile(path):
        raise InputError(
            f"{path}: not a Keras 3 .keras file (not a zip archive; legacy Keras 2 .h5 files "
            "are not supported)"
        )
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
            for member in ("config.json", "model.weights.h5"):
                if member not in names:
                    raise InputError(f"{path}: not a Keras 3 .keras file (no {member} in the zip)")
            try:
                graph = json.loads(archive.read("config.json"))
            except (json.JSONDecodeError, UnicodeDecodeError) as exc:
                raise InputError(f"{path}: config.json is not valid JSON ({exc})") from None
            metadata: dict[str, Any] = {}
            if "metadata.json" in names:
                try:
                    metadata = json.loads(archive.read("metadata.json"))
                except (json.JSONDecodeError, UnicodeDecodeError):
                    log.warning("%s: metadata.json is not valid JSON; ignored", path)
            weights = archive.read("model.weights.h5")
    except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError) as exc:
        # a damaged or truncated archive: bad CRC, cut-off member, unknown compression
        raise InputError(f"{path}: damaged .keras archive ({exc})") from None
    if not isinstance(graph, dict):
        raise InputError(f"{path}: config.json does not describe a Keras model")
    return graph, metadata if isinstance(metadata, dict) else {}, weights


def infer_ks(n_features: int) -> tuple[int, ...]:
    """The suffix of (6, 5, 4, 3, 2, 1) that has ``n_features`` columns."""
    for start in range(len(STANDARD_KS)):
        ks = STANDARD_KS[start:]
        if FeatureLayout(ks).n_features == n_features:
            return ks
    widths = ", ".join(
        f"{FeatureLayout(STANDARD_KS[i:]).n_features} ({STANDARD_KS[i]}…1-mers)"
        for i in range(len(STANDARD_KS))
    )
    raise InputError(
        f"input width {n_features} matches no k-group set of the standard order (widths: "
        f"{widths}); give the k-groups explicitly (ks)"
    )


# --- the layer graph --------------------------------------------------------------------


def _keras_sources(obj: Any) -> Iterator[str]:
    """Names of the layers whose outputs appear in an ``inbound_nodes`` entry, in order."""
    if isinstance(obj, dict):
        if obj.get("class_name") == "__keras_tensor__":
            history = obj.get("config", {}).get("keras_history")
            if isinstance(history, list) and history and isinstance(history[0], str):
                yield history[0]
            return
        for value in obj.values():
            yield from _keras_sources(value)
    elif isinstance(obj, list):
        # Keras 2 style: [layer_name, node_index, tensor_index, kwargs]
        if len(obj) >= 3 and isinstance(obj[0], str) and isinstance(obj[1], int):
            yield obj[0]
            return
        for value in obj:
            yield from _keras_sources(value)


def keras_layers(graph: dict[str, Any], source: Path | str = "") -> list[KerasLayer]:
    """The layers of a functional model's ``config.json``, in file order."""
    model_config = graph.get("config")
    raw = model_config.get("layers") if isinstance(model_config, dict) else None
    if not isinstance(raw, list) or not raw:
        raise InputError(
            f"{source}: config.json describes a {graph.get('class_name', 'model')} without a "
            "layer list; expected the functional encoder saved by the research code "
            "(vae_encoder*.keras)"
        )
    layers = []
    for entry in raw:
        if not isinstance(entry, dict):
            raise InputError(f"{source}: config.json has a layer that is not an object")
        config = entry.get("config")
        if not isinstance(config, dict):
            config = {}
        name = entry.get("name") or config.get("name")
        if not isinstance(name, str) or not isinstance(entry.get("class_name"), str):
            raise InputError(f"{source}: config.json has a layer without a name or class")
        seen: dict[str, None] = {}
        for src in _keras_sources(entry.get("inbound_nodes", [])):
            seen.setdefault(src)
        layers.append(KerasLayer(name, entry["class_name"], config, tuple(seen)))
    return layers


def _unmappable(source: Path | str, why: str) -> InputError:
    return InputError(f"{source}: cannot map the Keras architecture onto a kmervae encoder: {why}")


def _describe(layer: KerasLayer) -> str:
    return f"layer {layer.name!r} ({layer.class_name})"


def _linear_dense(layer: KerasLayer, source: Path | str) -> KerasLayer:
    if layer.class_name != "Dense":
        raise _unmappable(source, f"expected a Dense layer, found {_describe(layer)}")
    if layer.config.get("activation") not in (None, "linear"):
        raise _unmappable(
            source,
            f"{_describe(layer)} has activation {layer.config.get('activation')!r} "
            "(expected linear, followed by BatchNormalization and LeakyReLU)",
        )
    return layer


def _float(
    layer: KerasLayer, keys: tuple[str, ...], default: float | None, source: Path | str = ""
) -> float:
    for key in keys:
        value = layer.config.get(key)
        if value is not None:
            try:
                return float(value)
            except (TypeError, ValueError):
                raise InputError(f"{source}: {_describe(layer)} has {key}={value!r}") from None
    if default is None:
        raise InputError(f"{source}: {_describe(layer)} has no {keys[0]} in config.json")
    return default


def parse_keras_encoder(
    graph: dict[str, Any], *, ks: tuple[int, ...] | None = None, source: Path | str = ""
) -> KerasEncoderSpec:
    """Find the research encoder in a Keras functional graph and build its :class:`VAEConfig`.

    Raises
    ------
    InputError
        When the graph is not input -> [Dense, BatchNorm?, LeakyReLU, Dropout?]+ ->
        two Dense heads (z_mean, z_log_var, the latter optionally clipped).
    """
    layers = keras_layers(graph, source)
    by_name = {layer.name: layer for layer in layers}
    consumers: dict[str, list[KerasLayer]] = defaultdict(list)
    for layer in layers:
        for src in layer.sources:
            consumers[src].append(layer)
    inputs = [layer for layer in layers if layer.class_name == "InputLayer"]
    if len(inputs) != 1:
        raise _unmappable(source, f"expected one input layer, found {len(inputs)}")

    # the hidden chain: one consumer at a time until the graph forks into the two heads
    chain: list[KerasLayer] = []
    current = inputs[0]
    while True:
        nxt = consumers.get(current.name, [])
        if len(nxt) == 1 and len(nxt[0].sources) == 1:
            chain.append(nxt[0])
            current = nxt[0]
            continue
        break
    heads = consumers.get(current.name, [])
    if len(heads) != 2 or any(h.class_name != "Dense" for h in heads):
        found = ", ".join(_describe(h) for h in heads) or "nothing"
        raise _unmappable(
            source,
            f"after {_describe(current)} expected the two Dense heads z_mean and z_log_var, "
            f"found {found}",
        )
    heads = [_linear_dense(h, source) for h in heads]

    # hidden blocks: Dense -> BatchNormalization? -> LeakyReLU -> Dropout?
    dense: list[KerasLayer] = []
    batchnorm: list[KerasLayer] = []
    slopes: set[float] = set()
    dropouts: list[float] = []
    i = 0
    while i < len(chain):
        dense.append(_linear_dense(chain[i], source))
        i += 1
        if i < len(chain) and chain[i].class_name == "BatchNormalization":
            batchnorm.append(chain[i])
            i += 1
        if i >= len(chain) or chain[i].class_name != "LeakyReLU":
            found = _describe(chain[i]) if i < len(chain) else "the heads"
            raise _unmappable(
                source, f"expected LeakyReLU after {_describe(chain[i - 1])}, found {found}"
            )
        slopes.add(_float(chain[i], ("negative_slope", "alpha"), _KERAS_LEAKY_DEFAULT, source))
        i += 1
        if i < len(chain) and chain[i].class_name in ("Dropout", "AlphaDropout"):
            dropouts.append(_float(chain[i], ("rate",), 0.0, source))
            i += 1
    if not dense:
        raise _unmappable(source, "no hidden Dense layer before the heads")
    if batchnorm and len(batchnorm) != len(dense):
        raise _unmappable(source, "BatchNormalization follows some hidden Dense layers only")
    if len(slopes) != 1:
        raise _unmappable(source, f"the LeakyReLU layers use different slopes {sorted(slopes)}")
    bn_eps, bn_momentum = _batchnorm_settings(batchnorm, source)

    mu, logvar, clip = _identify_heads(graph, heads, consumers, by_name, source)
    if mu.config.get("units") != logvar.config.get("units"):
        raise _unmappable(source, "z_mean and z_log_var have different widths")
    if clip is not None:
        logvar_min = _float(clip, ("min_value", "clip_value_min", "min"), None, source)
        logvar_max = _float(clip, ("max_value", "clip_value_max", "max"), None, source)
    else:
        log.warning("%s: z_log_var is not clipped in the Keras model; no clip imported", source)
        logvar_min, logvar_max = -_NO_CLIP, _NO_CLIP

    n_features = _input_width(inputs[0], dense[0], source)
    if ks is None:
        try:
            ks = infer_ks(n_features)
        except InputError as exc:
            raise InputError(f"{source}: {exc}") from None
    else:
        try:
            width = FeatureLayout(tuple(ks)).n_features
        except ValueError as exc:
            raise InputError(f"ks {','.join(map(str, ks))}: {exc}") from None
        if width != n_features:
            raise InputError(
                f"{source}: k-groups {tuple(ks)} have {width} columns but the model's input "
                f"width is {n_features}"
            )
    config = VAEConfig(
        ks=tuple(ks),
        hidden=tuple(int(d.config["units"]) for d in dense),
        latent=int(mu.config["units"]),
        dropout=max(dropouts, default=0.0),
        batchnorm=bool(batchnorm),
        leaky_slope=slopes.pop(),
        logvar_min=logvar_min,
        logvar_max=logvar_max,
        bn_eps=bn_eps,
        bn_momentum=bn_momentum,
    )
    return KerasEncoderSpec(config, dense, batchnorm, mu, logvar, clip, layers)


def _batchnorm_settings(batchnorm: list[KerasLayer], source: Path | str) -> tuple[float, float]:
    """(epsilon, PyTorch momentum) shared by all BatchNormalization layers."""
    if not batchnorm:
        return VAEConfig.bn_eps, VAEConfig.bn_momentum
    settings = set()
    for layer in batchnorm:
        axis = layer.config.get("axis", -1)
        if axis not in (-1, 1, [-1], [1]):
            raise _unmappable(source, f"{_describe(layer)} normalises axis {axis}")
        if layer.config.get("renorm"):
            raise _unmappable(source, f"{_describe(layer)} uses batch renormalisation")
        eps = _float(layer, ("epsilon",), 1e-3, source)
        momentum = _float(layer, ("momentum",), 0.99, source)
        settings.add((eps, momentum))
    if len(settings) != 1:
        raise _unmappable(source, "the BatchNormalization layers use different settings")
    eps, keras_momentum = settings.pop()
    # Keras keeps `momentum` of the old average; PyTorch weights the new batch by `momentum`
    return eps, round(1.0 - keras_momentum, 12)


def _input_width(input_layer: KerasLayer, first_dense: KerasLayer, source: Path | str) -> int:
    for key in ("batch_shape", "batch_input_shape"):
        shape = input_layer.config.get(key)
        if isinstance(shape, list) and shape and isinstance(shape[-1], int):
            if len(shape) != 2:
                raise _unmappable(source, f"the input has shape {shape}, expected (batch, F)")
            return int(shape[-1])
    shape = first_dense.config.get("build_config", {}).get("input_shape")
    if isinstance(shape, list) and shape and isinstance(shape[-1], int):
        return int(shape[-1])
    raise _unmappable(source, "the input width is not recorded in config.json")


def _identify_heads(
    graph: dict[str, Any],
    heads: list[KerasLayer],
    consumers: dict[str, list[KerasLayer]],
    by_name: dict[str, KerasLayer],
    source: Path | str,
) -> tuple[KerasLayer, KerasLayer, KerasLayer | None]:
    """(z_mean, z_log_var, clip layer or None) among the two Dense heads."""
    clips: dict[str, KerasLayer] = {}
    for head in heads:
        for layer in consumers.get(head.name, []):
            if "clip" in layer.class_name.lower():
                clips[head.name] = layer
            elif layer.class_name != "Sampling":
                raise _unmappable(
                    source, f"{_describe(layer)} after head {head.name!r} is not supported"
                )
        if head.name in clips:
            for layer in consumers.get(clips[head.name].name, []):
                if layer.class_name != "Sampling":
                    raise _unmappable(source, f"{_describe(layer)} after the clip is not supported")
    if len(clips) == 2:
        raise _unmappable(source, "both heads are clipped; cannot tell z_mean from z_log_var")

    def order(first: KerasLayer) -> tuple[KerasLayer, KerasLayer, KerasLayer | None]:
        second = heads[1] if first is heads[0] else heads[0]
        return first, second, clips.get(second.name)

    if len(clips) == 1:
        (logvar_name,) = clips
        return order(heads[0] if heads[1].name == logvar_name else heads[1])
    # sampling layer: called as Sampling()([z_mean, z_log_var])
    for layer in by_name.values():
        if (
            layer.class_name == "Sampling"
            and len(layer.sources) == 2
            and layer.sources[0] in (h.name for h in heads)
        ):
            return order(by_name[layer.sources[0]])
    # names, then the model's declared output order
    for head in heads:
        name = head.name.lower()
        if "mean" in name or name in ("mu", "z_mu"):
            return order(head)
    outputs = list(_keras_sources(graph.get("config", {}).get("output_layers", [])))
    for name in outputs:
        for head in heads:
            if head.name == name:
                log.warning("%s: taking output %r as z_mean (first model output)", source, name)
                return order(head)
    raise _unmappable(source, "cannot tell which Dense head is z_mean")


# --- weights ----------------------------------------------------------------------------


def keras_snake_case(class_name: str) -> str:
    """Keras' ``to_snake_case``: ``BatchNormalization`` -> ``batch_normalization``."""
    name = re.sub(r"\W+", "", class_name)
    name = re.sub("(.)([A-Z][a-z]+)", r"\1_\2", name)
    name = re.sub("([a-z])([A-Z])", r"\1_\2", name)
    return name.lower()


def _layer_groups(h5: h5py.File, spec: KerasEncoderSpec) -> dict[str, h5py.Group]:
    """Layer name -> its ``vars`` group in ``model.weights.h5``."""
    root = h5.get("layers")
    if not isinstance(root, h5py.Group):
        raise InputError("model.weights.h5 has no 'layers' group (not a Keras 3 weights file)")
    found: dict[str, h5py.Group] = {}
    for group in root.values():
        vars_group = group.get("vars") if isinstance(group, h5py.Group) else None
        if isinstance(vars_group, h5py.Group):
            name = vars_group.attrs.get("name")
            if isinstance(name, bytes):
                name = name.decode()
            if isinstance(name, str):
                found.setdefault(name, vars_group)
    # Keras names the groups after the layer classes, in model.layers order
    counts: dict[str, int] = {}
    for layer in spec.all_layers:
        base = keras_snake_case(layer.class_name)
        key = base if base not in counts else f"{base}_{counts[base] + 1}"
        counts[base] = counts.get(base, -1) + 1
        for candidate in (key, layer.name):
            group = root.get(f"{candidate}/vars")
            if layer.name not in found and isinstance(group, h5py.Group):
                found[layer.name] = group
    return found


def _read_vars(
    groups: dict[str, h5py.Group], layer: KerasLayer, shapes: list[tuple[int, ...]], source: Path
) -> list[np.ndarray]:
    group = groups.get(layer.name)
    if group is None:
        raise InputError(f"{source}: model.weights.h5 holds no weights for {_describe(layer)}")
    keys = sorted((k for k in group if k.isdigit()), key=int)
    if len(keys) != len(shapes):
        raise InputError(
            f"{source}: {_describe(layer)} has {len(keys)} weight arrays in "
            f"model.weights.h5, expected {len(shapes)}"
        )
    arrays = []
    for key, shape in zip(keys, shapes, strict=True):
        data = np.asarray(group[key][()], dtype=np.float32)
        if data.shape != shape:
            raise InputError(
                f"{source}: {_describe(layer)} weight {key} has shape {data.shape}, "
                f"expected {shape}"
            )
        arrays.append(data)
    return arrays


def _dense_weights(
    groups: dict[str, h5py.Group], layer: KerasLayer, n_in: int, source: Path
) -> tuple[np.ndarray, np.ndarray]:
    """(weight float32 (out x in), bias float32 (out,)) in PyTorch's orientation."""
    units = int(layer.config["units"])
    use_bias = layer.config.get("use_bias", True)
    shapes: list[tuple[int, ...]] = [(n_in, units), (units,)] if use_bias else [(n_in, units)]
    arrays = _read_vars(groups, layer, shapes, source)
    bias = arrays[1] if use_bias else np.zeros(units, np.float32)
    return np.ascontiguousarray(arrays[0].T), bias  # Keras kernels are (in, out)


def _batchnorm_weights(
    groups: dict[str, h5py.Group], layer: KerasLayer, width: int, source: Path
) -> dict[str, np.ndarray]:
    """gamma, beta, moving mean and variance, float32 (width,), as PyTorch names them."""
    names = []
    if layer.config.get("scale", True):
        names.append("weight")
    if layer.config.get("center", True):
        names.append("bias")
    names += ["running_mean", "running_var"]
    arrays = _read_vars(groups, layer, [(width,)] * len(names), source)
    out = {"weight": np.ones(width, np.float32), "bias": np.zeros(width, np.float32)}
    out.update(zip(names, arrays, strict=True))
    return out


def build_encoder(spec: KerasEncoderSpec, h5: h5py.File, source: Path) -> Encoder:
    """A kmervae :class:`Encoder` (eval mode) holding the Keras weights of ``spec``."""
    try:
        groups = _layer_groups(h5, spec)
    except InputError as exc:
        raise InputError(f"{source}: {exc}") from None
    config = spec.config
    encoder = Encoder(config)
    linears = [m for m in encoder.body if isinstance(m, nn.Linear)]
    norms = [m for m in encoder.body if isinstance(m, nn.BatchNorm1d)]
    widths = (config.n_features, *config.hidden)
    with torch.no_grad():
        for i, (layer, linear) in enumerate(zip(spec.dense, linears, strict=True)):
            _assign_linear(linear, _dense_weights(groups, layer, widths[i], source))
        for layer, norm in zip(spec.batchnorm, norms, strict=True):
            values = _batchnorm_weights(groups, layer, norm.num_features, source)
            for name, value in values.items():
                getattr(norm, name).copy_(torch.from_numpy(value))
        _assign_linear(encoder.mu, _dense_weights(groups, spec.mu, widths[-1], source))
        _assign_linear(encoder.logvar, _dense_weights(groups, spec.logvar, widths[-1], source))
    return encoder.eval()


def _assign_linear(linear: nn.Linear, weights: tuple[np.ndarray, np.ndarray]) -> None:
    linear.weight.copy_(torch.from_numpy(weights[0]))
    linear.bias.copy_(torch.from_numpy(weights[1]))
