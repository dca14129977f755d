"""``kmervae export INPUT -o OUT``: a model's encoder as ONNX, or embeddings as VAMB's
``latent.npz`` or a TSV (see :mod:`kmervae.io.latent`)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from kmervae._extras import require
from kmervae.cli._common import Bounded, add_common_options
from kmervae.errors import KmervaeError
from kmervae.io.atomic import check_writable
from kmervae.model.onnx_runtime import MAX_OPSET, MIN_OPSET
from kmervae.provenance import run_provenance

log = logging.getLogger(__name__)


#: output formats, and the suffix that picks each
FORMATS = {"onnx": ".onnx", "npz": ".npz", "tsv": ".tsv"}


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export",
        help="export a model's encoder (ONNX) or embeddings (VAMB latent.npz, TSV)",
        description=(
            "Write INPUT in a portable format, chosen by the kind of INPUT and the suffix of "
            "OUT (or --format). A model (folder or training checkpoint .pt) becomes ONNX "
            "(OUT.onnx): input 'profiles' (float32, batch x F raw k-mer frequencies; the "
            "per-group CLR is in the graph), outputs 'mu' and 'logvar', dynamic batch size; "
            "the file records the model config, layout, kmervae version and weights "
            "fingerprint, and is checked against PyTorch with ONNX Runtime before it is "
            "written. An embedding store (kmervae embed) or an index store becomes VAMB's "
            "latent.npz (OUT.npz: member arr_0, float32 N x latent, rows in store order; the "
            "ids in OUT.names.txt) or a TSV (OUT.tsv: contig, dim_0, dim_1, ...), streamed "
            "in blocks; its provenance goes to OUT.json beside it."
        ),
    )
    parser.add_argument(
        "input",
        type=Path,
        metavar="INPUT",
        help="model folder or checkpoint, embedding store or index store",
    )
    parser.add_argument(
        "-o",
        "--output",
        required=True,
        type=Path,
        metavar="OUT",
        help="file to write: .onnx (a model), .npz or .tsv (embeddings)",
    )
    parser.add_argument(
        "--format",
        choices=tuple(FORMATS),
        help="onnx, npz or tsv (default: from the suffix of OUT)",
    )
    parser.add_argument(
        "--opset",
        type=Bounded(int, MIN_OPSET, MAX_OPSET),
        default=17,
        help=f"ONNX opset, {MIN_OPSET} to {MAX_OPSET} (default: 17); the file written carries "
        "exactly this opset, or nothing is written",
    )
    parser.add_argument(
        "--no-verify",
        dest="verify",
        action="store_false",
        help="skip the ONNX Runtime vs PyTorch check",
    )
    add_common_options(parser)
    parser.set_defaults(run=run)


def output_format(output: Path, chosen: str | None, kind: str) -> str:
    """The format to write ``kind`` (``model``, ``embeddings``, ``store``) as: ``chosen``,
    else the one of the suffix of ``output``; refused when it does not suit ``kind``."""
    fmt = chosen
    if fmt is None:
        fmt = next((f for f, suffix in FORMATS.items() if output.name.endswith(suffix)), None)
    if fmt is None:
        raise KmervaeError(
            f"{output}: cannot tell the format from the name (.onnx, .npz or .tsv); give --format"
        )
    if kind == "model" and fmt != "onnx":
        raise KmervaeError(f"a model exports to ONNX (.onnx), not {fmt}; embed it first")
    if kind != "model" and fmt == "onnx":
        raise KmervaeError("ONNX holds a model; embeddings export to .npz or .tsv")
    return fmt


def run(args: argparse.Namespace) -> int:
    from kmervae.io.latent import input_kind

    kind = input_kind(args.input)
    fmt = output_format(args.output, args.format, kind)
    if fmt == "onnx":
        return _export_model(args)
    return _export_embeddings(args, fmt)


def _export_embeddings(args: argparse.Namespace, fmt: str) -> int:
    from kmervae.io.latent import export_latent, names_path, open_latent_source

    check_writable(args.output, args.force, stream_ok=fmt == "tsv")
    if fmt == "npz":
        check_writable(names_path(args.output), args.force)
    source = open_latent_source(args.input)
    record = export_latent(
        source, args.output, fmt, run_provenance(args.argv), overwrite=args.force
    )
    more = f" (ids in {names_path(args.output)})" if fmt == "npz" else ""
    log.info(
        "exported %d embeddings of %d dimensions from %s to %s%s",
        record["n_rows"],
        source.dim,
        args.input,
        args.output,
        more,
    )
    return 0


def _export_model(args: argparse.Namespace) -> int:
    for module in ("torch", "onnx", "onnxscript"):
        require(module, extra="export", purpose="exporting a model to ONNX")
    from kmervae.model.files import load_model
    from kmervae.model.onnx_export import export_onnx

    check_writable(args.output, args.force)
    model = load_model(args.input)
    result = export_onnx(
        model, args.output, overwrite=args.force, opset=args.opset, verify=args.verify
    )
    checked = (
        f"; ONNX Runtime matches PyTorch to {result.max_abs_diff:.1e}"
        if result.max_abs_diff is not None
        else ""
    )
    log.info(
        "exported the encoder of %s (%d -> %d, fingerprint %s) to %s%s",
        args.input,
        model.config.n_features,
        model.config.latent,
        model.fingerprint[:12] or "?",
        args.output,
        checked,
    )
    return 0
