"""``kmervae export``: write a model's encoder in a portable format (ONNX)."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from kmervae.cli._common import Bounded, add_common_options
from kmervae.io.atomic import check_writable
from kmervae.model.onnx_runtime import MAX_OPSET, MIN_OPSET

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "export",
        help="export a model's encoder to ONNX",
        description=(
            "Write the encoder of a model (folder or training checkpoint .pt) as ONNX: input "
            "'profiles' (float32, batch x F raw k-mer frequencies; the per-group CLR is in "
            "the graph), outputs 'mu' and 'logvar', dynamic batch size. The file records the "
            "model config, layout, kmervae version and weights fingerprint, and is checked "
            "against PyTorch with ONNX Runtime before it is written."
        ),
    )
    parser.add_argument("model", type=Path, metavar="MODEL", help="model folder or checkpoint")
    parser.add_argument(
        "--onnx", required=True, type=Path, metavar="OUT.onnx", help="ONNX file to write"
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


def run(args: argparse.Namespace) -> int:
    from kmervae.model.files import load_model
    from kmervae.model.onnx_export import export_onnx

    check_writable(args.onnx, args.force)
    model = load_model(args.model)
    result = export_onnx(
        model, args.onnx, overwrite=args.force, opset=args.opset, verify=args.verify
    )
    checked = (
        f"; ONNX Runtime matches PyTorch to {result.max_abs_diff:.1e}"
        if result.max_abs_diff is not None
        else ""
    )
    log.info(
        "exported the encoder of %s (%d -> %d, fingerprint %s) to %s%s",
        args.model,
        model.config.n_features,
        model.config.latent,
        model.fingerprint[:12] or "?",
        args.onnx,
        checked,
    )
    return 0
