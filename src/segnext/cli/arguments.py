"""Argument types shared by several commands."""

from __future__ import annotations

import argparse
from typing import Optional


def nmf_seed(text: str) -> Optional[int]:
    """--nmf-seed: an integer, or "none" for the official random bases at every forward."""
    if text.strip().lower() in ("none", "random"):
        return None
    try:
        return int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer or 'none', got {text!r}") from None
