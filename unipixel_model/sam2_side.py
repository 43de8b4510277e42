"""SAM 2's input side in pixels (``sam2_image_size``): the one check of a side, for the config, recipes, settings and
command lines. No torch here: the fine-tune's light modules (settings, queue, CLI) import it."""

from __future__ import annotations

import argparse


def check_sam2_image_size(side: int) -> int:
    """``side`` if it can be SAM 2's input side in pixels (a positive multiple of 16: its backbone strides).

    Raises:
        ValueError: naming the value and what to give.
    """
    if isinstance(side, bool) or not isinstance(side, int) or side <= 0 or side % 16:
        raise ValueError(f"SAM 2's input side must be a positive multiple of 16 pixels (e.g. 768 for the releases, "
                         f"192 for the toy), got {side!r}")
    return side


def sam2_side_argument(text: str) -> int:
    """argparse type of ``--sam2-image-size`` (:func:`check_sam2_image_size`)."""
    try:
        side = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number of pixels: {text!r}") from None
    try:
        return check_sam2_image_size(side)
    except ValueError as err:
        raise argparse.ArgumentTypeError(str(err)) from None
