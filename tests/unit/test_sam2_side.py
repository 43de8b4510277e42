"""``unipixel_model.sam2_side``: the one check of SAM 2's input side, and ``--sam2-image-size``'s argparse type."""

import argparse

import pytest

from unipixel_model.sam2_side import check_sam2_image_size, sam2_side_argument


@pytest.mark.parametrize("side", [16, 128, 192, 768, 1024])
def test_multiples_of_16_are_sides(side):
    assert check_sam2_image_size(side) == sam2_side_argument(str(side)) == side


@pytest.mark.parametrize("side", [0, -16, 100, 200, True, 192.0, "192"])
def test_other_values_are_refused_with_the_value(side):
    with pytest.raises(ValueError, match=r"positive multiple of 16 pixels .*got"):
        check_sam2_image_size(side)


@pytest.mark.parametrize("text, words", [("abc", "not a whole number of pixels: 'abc'"), ("1.5", "whole number"),
                                         ("100", "multiple of 16 .*got 100"), ("-16", "got -16")])
def test_the_command_line_says_what_to_give(text, words):
    with pytest.raises(argparse.ArgumentTypeError, match=words):
        sam2_side_argument(text)
