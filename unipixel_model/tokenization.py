"""Tokenizers: load a checkpoint's, or build an offline byte-level one.

The released checkpoints ship Qwen's tokenizer with ``<|ref|>``, ``<|seg|>``, ``<|mem|>`` added
as special tokens; ids always come from the files, never from constants. The byte-level tokenizer
maps each UTF-8 byte to its value, pads with filler tokens up to ``special_start``, then Qwen's 22
special tokens, then the three UniPixel tokens. With ``special_start`` 960 that is the layout of
the golden fixtures' tokenizer (the ``tiny`` preset); with 151643 the special tokens carry the
real Qwen2.5-VL / UniPixel ids (``<|video_pad|>`` 151656, ``<|ref|>`` 151665, ...), which is what
the ``random-3b``/``random-7b`` models use: text takes about 3-4x more tokens than with Qwen's
BPE, negligible next to the hundreds of video tokens of a query.
"""

from __future__ import annotations

from pathlib import Path

from unipixel_model import _tv_shim  # noqa: F401
from transformers import PreTrainedTokenizerFast

QWEN_SPECIAL_TOKENS = (
    "<|endoftext|>", "<|im_start|>", "<|im_end|>", "<|object_ref_start|>", "<|object_ref_end|>",
    "<|box_start|>", "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>",
    "<|vision_end|>", "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>", "<tool_call>", "</tool_call>",
    "<|fim_prefix|>", "<|fim_middle|>", "<|fim_suffix|>", "<|fim_pad|>", "<|repo_name|>", "<|file_sep|>",
)
UNIPIXEL_TOKENS = ("<|ref|>", "<|seg|>", "<|mem|>")
TINY_SPECIAL_START = 960
TINY_VOCAB_SIZE = 1024
QWEN_SPECIAL_START = 151643  # <|endoftext|> in Qwen2.5's vocabulary


def load_tokenizer(path: str | Path) -> PreTrainedTokenizerFast:
    """The tokenizer saved in a checkpoint directory (``tokenizer.json`` + its config).

    Raises:
        FileNotFoundError: when the directory has no ``tokenizer.json``.
    """
    path = Path(path)
    if not (path / "tokenizer.json").is_file():
        raise FileNotFoundError(f"no tokenizer.json in {path}; UniPixel checkpoints ship their tokenizer")
    return PreTrainedTokenizerFast.from_pretrained(str(path))


def special_token_ids(tokenizer) -> dict[str, int]:
    """Ids of the special tokens UniPixel relies on, read from the tokenizer itself.

    Raises:
        ValueError: naming any token the tokenizer does not know.
    """
    names = QWEN_SPECIAL_TOKENS + UNIPIXEL_TOKENS
    ids = {name: tokenizer.convert_tokens_to_ids(name) for name in names}
    missing = [name for name, i in ids.items() if i is None or i == tokenizer.unk_token_id]
    if missing:
        raise ValueError(f"the tokenizer lacks UniPixel's special tokens {missing}")
    return ids


def build_byte_tokenizer(special_start: int = TINY_SPECIAL_START) -> PreTrainedTokenizerFast:
    """A byte-level tokenizer: ids 0-255 = bytes, ``special_start``+ = Qwen + UniPixel specials.

    Args:
        special_start: id of ``<|endoftext|>``; 960 for the ``tiny`` preset (1024-id vocabulary),
            :data:`QWEN_SPECIAL_START` for the real ids (about 1 s to build, 5 MB saved).
    """
    from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers
    from tokenizers.pre_tokenizers import ByteLevel

    alphabet = sorted(ByteLevel.alphabet(), key=lambda ch: _byte_of(ch))
    vocab = {ch: i for i, ch in enumerate(alphabet)}
    vocab.update({f"<|filler_{i}|>": i for i in range(256, special_start)})
    core = Tokenizer(models.BPE(vocab=vocab, merges=[], unk_token=None))
    core.normalizer = normalizers.NFC()
    core.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)
    core.decoder = decoders.ByteLevel()
    core.add_special_tokens(list(QWEN_SPECIAL_TOKENS) + list(UNIPIXEL_TOKENS))
    return PreTrainedTokenizerFast(tokenizer_object=core, eos_token="<|im_end|>", pad_token="<|endoftext|>",
                                   additional_special_tokens=list(UNIPIXEL_TOKENS),
                                   clean_up_tokenization_spaces=False, model_max_length=131072)


def _byte_of(char: str) -> int:
    """Inverse of GPT-2's bytes_to_unicode for one character."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) \
        + list(range(ord("®"), ord("ÿ") + 1))
    if ord(char) in printable:
        return ord(char)
    others = [b for b in range(256) if b not in printable]
    return others[ord(char) - 256]
