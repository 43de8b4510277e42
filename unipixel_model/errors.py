"""Exceptions raised by :mod:`unipixel_model`.

All of them subclass ``ValueError`` (bad input the caller can fix) or ``RuntimeError``
(a broken checkpoint or environment), so callers that only know the builtins still work.
"""


class UniPixelInputError(ValueError):
    """An input (prompt, frame index, mask, media) is invalid; the message says how to fix it."""


class TokenCountError(UniPixelInputError):
    """The number of special tokens in the text does not match the number of features."""


class CheckpointError(RuntimeError):
    """A checkpoint directory is missing files or tensors, or holds tensors of the wrong shape."""


class MediaDecodeError(UniPixelInputError):
    """An image or video file could not be decoded."""
