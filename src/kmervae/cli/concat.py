"""``kmervae concat``: join, shuffle and split profile datasets."""

from __future__ import annotations

import argparse


def register(sub: argparse._SubParsersAction) -> None:
    pass
