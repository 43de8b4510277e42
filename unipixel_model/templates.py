"""Every text the model reads or is taught to write: the one home of UniPixel's prompt templates.

Serving (``unipixel_model.session``, ``backend``), training (``finetune``) and evaluation all build
their questions and forced answers here, so they agree by construction rather than by copy. The
official lists are byte-identical to the UniPixel code (``../shared/docs/unipixel_spec.md`` §2.7 and
Appendix A; a test checks them); the rest are this project's own phrasings.

Torch-free: ``backend.converters`` may import this module.
"""

from __future__ import annotations

import re

REF_TOKEN, SEG_TOKEN, MEM_TOKEN = "<|ref|>", "<|seg|>", "<|mem|>"

# ---- official (spec Appendix A, §2.7) ----------------------------------------------------------
SEG_MEMORY_PROMPTS = (
    "{} Please localize the relevant objects with IDs.",
    "{} Segment all the relevant target(s) with ID(s) in the video.",
    "{} Can you segment the target object(s) with ID(s) in the video?",
    "Please segment the mentioned objects with IDs in the question: {}",
    "Find and track the relevant objects with IDs in the query: {}",
    "Given the query '{}', please provide segmentation masks for the relevant objects with IDs.",
)
SEG_IMAGE_QUERY_PROMPTS = (
    "Can you segment the {} in this image?",
    "Please segment the {} in this image.",
    "Can you find the {} in the image?",
    "Segment the {} in the image.",
    "Track the {} in this image.",
    "Where is the {} in this image? Please respond with the segmentation mask.",
    "What is the {}? Please output the segmentation mask.",
)
SEG_VIDEO_QUERY_PROMPTS = tuple(p.replace("image", "video") for p in SEG_IMAGE_QUERY_PROMPTS)
SEG_SENTENCE_PROMPTS = (
    "{} Please provide the segmentation mask.",
    "{} Please respond with the segmentation mask.",
    "{} Output the segmentation mask.",
    "{} Give me the segmentation results directly.",
    "{} Segment the target directly.",
)
SEG_RESPONSES = (
    "The target is <|seg|>.",
    "The segmentation result is <|seg|>.",
    "Sure, the segmentation mask is <|seg|>.",
    "Sure, it is <|seg|>.",
    "<|seg|>.",
)
MEM_VIDEO_PREFIX = ("Here is a video with {n} frames denoted as <1> to <{n}>. "
                    "The highlighted regions are as follows:\n")
MEM_IMAGE_PREFIX = "Here is an image with the following highlighted regions:\n"

# ---- what this project asks (fixed choices among the official ones, plus our own) -----------
MEMORY_PROMPT = SEG_MEMORY_PROMPTS[0]          # the official evaluation always uses the first
SEG_ANSWER = SEG_RESPONSES[3]                  # "Sure, it is <|seg|>."
DESCRIBE_QUESTION = "Please describe [{}] briefly."          # object [n] shown through <|mem|>
REF_DESCRIBE_QUESTION = "Please describe [{}] <|ref|> briefly."  # object [n] shown by a click or box
_ARTICLE = re.compile(r"^(the|a|an)\s+", re.IGNORECASE)
_SPECIAL = re.compile(r"<\|[^|>]*\|>")


def segmentation_question(text: str, is_image: bool) -> str:
    """A text query as UniPixel was trained to read it.

    Short phrases go into ``SEG_*_QUERY_PROMPTS[1]`` ("Please segment the {} in this video.") without
    their leading article (the official query pre-processing); sentences and questions (ending in
    '.', '?' or '!', or longer than 12 words) get ``SEG_SENTENCE_PROMPTS[0]``.
    """
    text = " ".join(text.split())
    if text.endswith(("?", ".", "!")) or len(text.split()) > 12:
        return SEG_SENTENCE_PROMPTS[0].format(text)
    phrase = _ARTICLE.sub("", text)
    return (SEG_IMAGE_QUERY_PROMPTS if is_image else SEG_VIDEO_QUERY_PROMPTS)[1].format(phrase)


def memory_question(obj_ids: list[int], question: str | None = None) -> tuple[str, str]:
    """Pass 1 of the memory bank (spec §2.7): the question with ``[id] <|ref|>`` and its forced answer.

    Args:
        obj_ids: the objects prompted by a click or box, in prompt order.
        question: the user's own question; when it contains ``<|ref|>`` it is used as is.
    Returns:
        (question wrapped in :data:`MEMORY_PROMPT`, answer ``"[1] <|seg|> [2] <|seg|>"``).
    """
    refs = question if question and REF_TOKEN in question else \
        " ".join(f"[{i}] {REF_TOKEN}" for i in obj_ids) + (f" {question}" if question else "")
    answer = " ".join(f"[{i}] {SEG_TOKEN}" for i in obj_ids)
    return MEMORY_PROMPT.format(refs.rstrip().rstrip(".") + "."), answer


def mem_prefix_lines(obj_chunks: dict[int, list[int]], num_frames: int | None) -> str:
    """The memory-injection prefix (spec §2.7) for objects present in the given frame pairs.

    Args:
        obj_chunks: object id -> 0-based temporal chunks (pairs of LLM frames) where it is present.
        num_frames: LLM frames before even padding; None for an image (no time tags).
    """
    if num_frames is None:
        return MEM_IMAGE_PREFIX + "".join(f"[{obj_id}]: {MEM_TOKEN}\n" for obj_id in obj_chunks)
    lines = [f"[{obj_id}]: " + " ".join(f"<{2 * k + 1}>-<{2 * k + 2}> {MEM_TOKEN}" for k in chunks) + "\n"
             for obj_id, chunks in obj_chunks.items()]
    return MEM_VIDEO_PREFIX.format(n=num_frames) + "".join(lines)


OBJ_REF = re.compile(r"\[(\d+)\]")  # "[3]": object 3 of the memory bank


def clean_answer(text: str) -> str:
    """Model text without special tokens (``<|seg|>``, ``<|im_end|>``...), without the U+FFFD
    that a byte-level tokenizer leaves for a cut multi-byte character, and without extra spaces."""
    return " ".join(_SPECIAL.sub(" ", text).replace("\ufffd", " ").split())
