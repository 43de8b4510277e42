"""Every XML in label_config/ parses into the spec the backend expects; unsupported configs say why."""

from __future__ import annotations

from pathlib import Path

import pytest

from backend.errors import UnsupportedLabelConfig
from backend.label_config import parse_label_config

CONFIGS = Path(__file__).parents[2] / "label_config"
EXPECTED = {"video_tracking": ("video", "VideoRectangle", True), "video_masks": ("frames", "BrushLabels", True),
            "image_segmentation": ("image", "BrushLabels", False),
            "referring_expressions": ("image", "BrushLabels", True)}


def test_label_config_folder_has_exactly_the_documented_configs():
    assert {p.stem for p in CONFIGS.glob("*.xml")} == set(EXPECTED)
    readme = (CONFIGS / "README.md").read_text()
    assert all(f"`{name}.xml`" in readme for name in EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_label_config_parses(name):
    spec = parse_label_config((CONFIGS / f"{name}.xml").read_text())
    mode, output, described = EXPECTED[name]
    assert spec.mode == mode and spec.output.tag == output and spec.output.to_name == spec.obj.name
    assert spec.prompt is not None and not spec.prompt.per_region
    assert (spec.description is not None) == described
    assert spec.default_label
    if mode != "video":
        assert spec.points and spec.points.smart and spec.boxes
        assert set(spec.points.labels) == set(spec.output.labels)


def test_label_config_video_framerate_fixed_and_per_task():
    spec = parse_label_config((CONFIGS / "video_tracking.xml").read_text())
    assert spec.framerate({}) == 25.0
    per_task = parse_label_config((CONFIGS / "video_tracking.xml").read_text().replace('"25"', '"$fps"'))
    assert per_task.framerate({"fps": "29.97"}) == pytest.approx(29.97)
    with pytest.raises(UnsupportedLabelConfig, match=r"\$fps"):
        per_task.framerate({})


@pytest.mark.parametrize("xml, words", [
    ("", "no label_config"),
    ("<View><Image", "not valid XML"),
    ("<View><Image name='i' value='$i'/><Choices name='c' toName='i'><Choice value='x'/></Choices></View>",
     "Video + VideoRectangle"),
    ("<View><Video name='v' value='$v'/><BrushLabels name='b' toName='v'/></View>", "Image + BrushLabels"),
])
def test_label_config_unsupported_names_supported_tags(xml, words):
    with pytest.raises(UnsupportedLabelConfig, match=words.replace("+", r"\+").replace("$", r"\$")):
        parse_label_config(xml)
