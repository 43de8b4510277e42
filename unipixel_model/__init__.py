"""UniPixel (Qwen2.5-VL + object memory bank + SAM 2.1) for pixel-level video understanding.

Importing the package first makes torchvision importable on CPU-only installs (see
``_tv_shim``); nothing heavy is loaded at import time.
"""

from unipixel_model import _tv_shim  # noqa: F401  (must run before transformers/sam2 import torchvision)

__all__ = ["__version__"]
__version__ = "0.1.0"
