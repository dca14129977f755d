"""``kmervae import-keras``: turn an encoder saved by the research code into a model folder."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

from kmervae._extras import require
from kmervae.cli._common import add_common_options, k_groups
from kmervae.errors import KmervaeError
from kmervae.io.atomic import check_writable
from kmervae.provenance import run_provenance

log = logging.getLogger(__name__)


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "import-keras",
        help="convert a Keras 3 encoder (.keras) into a kmervae model",
        description=(
            "Convert an encoder saved by the research code (Keras 3 .keras file: "
            "config.json, metadata.json, model.weights.h5) into a kmervae model folder, "
            "without TensorFlow or Keras. The architecture (widths, latent size, BatchNorm "
            "settings, LeakyReLU slope, log-variance clip) is read from the file; the "
            "k-groups follow from the input width (2772: 6…1-mers, 692: 5…1-mers). Only the "
            "encoder is imported: the model can embed but not be trained further."
        ),
    )
    parser.add_argument("keras", type=Path, metavar="KERAS", help="vae_encoder*.keras file")
    parser.add_argument(
        "-o", "--output", required=True, type=Path, metavar="MODEL", help="model folder to write"
    )
    parser.add_argument(
        "--ks",
        type=k_groups,
        default=None,
        metavar="K,K,…",
        help="k-groups of the input columns (each 1 to 6, distinct), in order (default: "
        "inferred from the width)",
    )
    parser.add_argument("--name", default=None, help="model name for the card (default: file stem)")
    add_common_options(parser)
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    require("h5py", extra="keras", purpose="import-keras")
    require("torch", extra="keras", purpose="import-keras")
    from kmervae.model.files import save_model
    from kmervae.model.keras_import import import_keras_encoder

    if args.ks is not None and len(set(args.ks)) != len(args.ks):
        raise KmervaeError(f"--ks {','.join(map(str, args.ks))}: each k-group may appear once")
    if not args.keras.is_file():
        raise KmervaeError(f"{args.keras}: no such file")
    check_writable(args.output, args.force)
    provenance = run_provenance(args.argv)
    imported = import_keras_encoder(
        args.keras,
        ks=args.ks,
        provenance={"command": provenance["command"], "imported": provenance["created"]},
    )
    if args.name:
        imported.card["name"] = args.name
    save_model(imported.encoder, args.output, card=imported.card, overwrite=args.force)
    config = imported.config
    log.info(
        "imported %s (Keras %s): %d -> %s -> %d latent, k-groups %s; wrote %s",
        args.keras,
        imported.card["provenance"].get("keras_version") or "?",
        config.n_features,
        " -> ".join(map(str, config.hidden)),
        config.latent,
        ",".join(map(str, config.ks)),
        args.output,
    )
    return 0
