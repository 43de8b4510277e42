"""Print the checkpoint tensors of a UniPixel architecture without allocating its weights.

Usage: ``python -m unipixel_model.inspect --preset 3b|7b|tiny --keys``

Builds the model on PyTorch's meta device and prints one line per tensor the official code
saves, ``name<TAB>shape`` (comma-separated sizes, empty for a 0-d tensor), sorted by name, in the
official key layout (legacy ``visual.*``/``model.*`` prefixes, no separate tied ``lm_head``).
"""

from __future__ import annotations

import argparse
import math
import sys

import torch

from unipixel_model.loading import checkpoint_state_keys
from unipixel_model.presets import PRESETS, preset_config


def checkpoint_listing(preset: str) -> list[str]:
    """``name<TAB>shape`` lines for every checkpoint tensor of ``preset``, sorted by name."""
    from transformers import initialization

    from unipixel_model.modeling import UniPixelModel

    config = preset_config(preset)
    with torch.device("meta"), initialization.no_init_weights():
        model = UniPixelModel(config)
    shapes = checkpoint_state_keys(model)
    return [f"{name}\t{','.join(str(s) for s in shapes[name])}" for name in sorted(shapes)]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unipixel_model.inspect", description=__doc__.split("\n")[0])
    parser.add_argument("--preset", required=True, choices=sorted(PRESETS))
    parser.add_argument("--keys", action="store_true", help="list checkpoint tensors and shapes")
    args = parser.parse_args(argv)
    lines = checkpoint_listing(args.preset)
    if args.keys:
        print("\n".join(lines))
    else:
        total = sum(math.prod(int(s) for s in line.split("\t")[1].split(",") if s) for line in lines)
        print(f"{args.preset}: {len(lines)} tensors, {total:,} elements (use --keys to list them)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
