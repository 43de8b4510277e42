"""UniPixel (Qwen2.5-VL + object memory bank + SAM 2.1) for pixel-level video understanding.

Importing the package loads nothing heavy, not even torch: ``unipixel_model.prompts`` (the typed
prompts) is the one module Label Studio converters may import. Every module that imports transformers,
sam2 or peft imports ``_tv_shim`` first (torchvision on CPU-only installs).
"""

__all__ = ["__version__"]
__version__ = "0.1.0"
