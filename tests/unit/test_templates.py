"""The prompt templates (``unipixel_model/templates.py``, their one home) are byte-identical to the official ones quoted
in ``../shared/docs/unipixel_spec.md`` (Appendix A and §2.7): serving, training and evaluation all read them."""

from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

from unipixel_model import templates

SPEC = Path(__file__).parents[2].parent / "shared" / "docs" / "unipixel_spec.md"


def _spec_list(name: str) -> list[str]:
    """The quoted strings listed under the first mention of ``name`` that is followed by bullets (Python literals)."""
    lines = SPEC.read_text().splitlines()
    for n, line in enumerate(lines):
        if f"`{name}`" not in line:
            continue
        bullets, k = [], n + 1
        while k < len(lines) and (not lines[k].strip() and not bullets or lines[k].lstrip().startswith("- `")):
            match = re.match(r"^\s*- `(.+)`$", lines[k])
            if match:
                bullets.append(ast.literal_eval(match[1]))
            k += 1
        if bullets:
            return bullets
    return []


@pytest.mark.parametrize("name", ["SEG_IMAGE_QUERY_PROMPTS", "SEG_SENTENCE_PROMPTS", "SEG_RESPONSES",
                                  "SEG_MEMORY_PROMPTS"])
def test_template_lists_match_the_spec(name):
    quoted = _spec_list(name)
    assert quoted, f"no quoted list for {name} in {SPEC}"
    assert list(getattr(templates, name)) == quoted


def test_memory_prefixes_and_video_query_list_match_the_spec():
    text = SPEC.read_text()
    video = "Here is a video with {N} frames denoted as <1> to <{N}>. The highlighted regions are as follows:\\n"
    assert f"`'{video}'`" in text and templates.MEM_VIDEO_PREFIX.format(n="{N}") == video.replace("\\n", "\n")
    assert "`'Here is an image with the following highlighted regions:\\n'`" in text
    assert templates.MEM_IMAGE_PREFIX == "Here is an image with the following highlighted regions:\n"
    assert templates.SEG_VIDEO_QUERY_PROMPTS == tuple(p.replace("image", "video")
                                                      for p in _spec_list("SEG_IMAGE_QUERY_PROMPTS"))
