"""COCO RLE and DAVIS PNG exports: round trips, file layout and input checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image
from pycocotools.coco import COCO

from finetune.export import (
    ExportError,
    ExportItem,
    ObjectMasks,
    davis_palette,
    decode_coco_annotation,
    read_coco_rle,
    read_davis_png,
    write_coco_rle,
    write_davis_pngs,
)
from finetune.world import writers

H, W = 24, 32


def _box(y0: int, y1: int, x0: int, x1: int) -> np.ndarray:
    mask = np.zeros((H, W), dtype=bool)
    mask[y0:y1, x0:x1] = True
    return mask


def _item(task_id: int = 7, name: str = "video_a") -> ExportItem:
    """2 objects × 3 frames. Frame 0: the objects overlap on rows 8..11 × cols 10..13.
    Object 1 has no mask on frame 1; object 2 has an explicit all-False mask on frame 2."""
    car = ObjectMasks(label="car", masks={0: _box(4, 12, 4, 14), 2: _box(0, 6, 20, 32)})
    person = ObjectMasks(label="person", masks={0: _box(8, 20, 10, 18), 1: _box(10, 24, 0, 5), 2: _box(0, 0, 0, 0)})
    frame_names = ["00000", "00001", "00002"]
    return ExportItem(task_id=task_id, name=name, frame_names=frame_names, size_hw=(H, W), objects={1: car, 2: person})


def test_export_coco_rle_round_trip(tmp_path):
    items = [_item(), _item(task_id=8, name="video_b")]
    path = write_coco_rle(items, tmp_path / "out" / "masks.json")
    restored = read_coco_rle(path)
    assert [(r.task_id, r.name, r.frame_names, r.size_hw) for r in restored] == [
        (i.task_id, i.name, i.frame_names, i.size_hw) for i in items
    ]
    for original, back in zip(items, restored):
        assert {k: o.label for k, o in back.objects.items()} == {1: "car", 2: "person"}
        for obj_id in (1, 2):
            np.testing.assert_array_equal(back.object_volume(obj_id), original.object_volume(obj_id))
        assert sorted(back.objects[2].masks) == [0, 1]  # the all-False frame 2 wrote no annotation


def test_export_coco_rle_fields_are_valid_coco(tmp_path):
    path = write_coco_rle([_item(), _item(task_id=8, name="video_b")], tmp_path / "masks.json")
    data = json.loads(path.read_text())
    assert data["categories"] == [{"id": 1, "name": "car"}, {"id": 2, "name": "person"}]
    assert [im["id"] for im in data["images"]] == [1, 2, 3, 4, 5, 6]
    expected_image = {"id": 5, "file_name": "video_b/00001", "height": H, "width": W, "video_id": 2, "frame_idx": 1}
    assert data["images"][4] == expected_image
    first = data["annotations"][0]
    assert isinstance(first["segmentation"]["counts"], str)
    assert first["segmentation"]["size"] == [H, W]
    assert (first["area"], first["bbox"], first["iscrowd"]) == (80, [4.0, 4.0, 10.0, 8.0], 0)
    assert (first["task_id"], first["object_id"], first["frame_idx"], first["category_id"]) == (7, 1, 0, 1)
    assert len(data["annotations"]) == 2 * 4  # per item: car on 2 frames, person on 2 non-empty frames
    coco = COCO(str(path))  # the official API reads it and decodes the same mask
    np.testing.assert_array_equal(coco.annToMask(coco.anns[first["id"]]).astype(bool), _box(4, 12, 4, 14))
    np.testing.assert_array_equal(decode_coco_annotation(first), _box(4, 12, 4, 14))


def test_export_coco_rle_write_is_atomic_and_overwrites(tmp_path):
    path = tmp_path / "masks.json"
    path.write_text("old")
    write_coco_rle([_item()], path)
    assert json.loads(path.read_text())["videos"][0]["task_id"] == 7
    assert [p.name for p in tmp_path.iterdir()] == ["masks.json"]  # no temp file left behind


def test_export_davis_png_round_trip_and_overlap_higher_id_wins(tmp_path):
    item = _item()
    write_davis_pngs([item], tmp_path)
    for frame_idx, frame_name in enumerate(item.frame_names):
        path = tmp_path / "video_a" / f"{frame_name}.png"
        with Image.open(path) as image:
            assert image.mode == "P"
            assert np.array(image.getpalette()[:9]).tolist() == [0, 0, 0, 128, 0, 0, 0, 128, 0]
        ids = read_davis_png(path)
        assert ids.dtype == np.uint8 and ids.shape == (H, W)
        expected = np.zeros((H, W), dtype=np.uint8)
        expected[item.object_volume(1)[frame_idx]] = 1
        expected[item.object_volume(2)[frame_idx]] = 2  # painted last: object 2 wins the overlap
        np.testing.assert_array_equal(ids, expected)
    frame0 = read_davis_png(tmp_path / "video_a" / "00000.png")
    assert frame0[8:12, 10:14].tolist() == np.full((4, 4), 2).tolist()


def test_export_davis_png_per_object_layout_is_binary_255(tmp_path):
    item = _item()
    write_davis_pngs([item], tmp_path, per_object=True)
    for obj_id in (1, 2):
        volume = item.object_volume(obj_id)
        for frame_idx, frame_name in enumerate(item.frame_names):  # every frame, empty ones included
            path = tmp_path / "video_a" / str(obj_id) / f"{frame_name}.png"
            with Image.open(path) as image:
                assert image.mode == "L"
            np.testing.assert_array_equal(read_davis_png(path), volume[frame_idx].astype(np.uint8) * 255)


def test_export_davis_palette_matches_pascal_voc():
    palette = davis_palette()
    assert palette.shape == (256, 3)
    assert palette[:5].tolist() == [[0, 0, 0], [128, 0, 0], [0, 128, 0], [128, 128, 0], [0, 0, 128]]
    assert palette[255].tolist() == [224, 224, 192]


def test_export_item_rejects_bad_inputs_with_numbers():
    with pytest.raises(ExportError, match=r"\(24, 30\) != size_hw \(24, 32\)"):
        ExportItem(1, "v", ["0"], (H, W), {1: ObjectMasks("car", {0: np.zeros((24, 30), bool)})})
    with pytest.raises(ExportError, match=r"frame_idx 3 outside \[0, 2\]"):
        ExportItem(1, "v", ["0", "1", "2"], (H, W), {1: ObjectMasks("car", {3: _box(0, 1, 0, 1)})})
    with pytest.raises(ExportError, match="object id 0"):
        ExportItem(1, "v", ["0"], (H, W), {0: ObjectMasks("car")})
    with pytest.raises(ValueError, match="file name"):
        ExportItem(1, "../v", ["0"], (H, W))


def test_export_davis_png_rejects_ids_over_255(tmp_path):
    item = ExportItem(1, "v", ["0"], (H, W), {256: ObjectMasks("car", {0: _box(0, 2, 0, 2)})})
    with pytest.raises(ExportError, match="256"):
        write_davis_pngs([item], tmp_path)


def test_export_read_davis_png_rejects_rgb(tmp_path):
    writers.write_image(np.zeros((4, 4, 3), np.uint8), tmp_path / "rgb.png")
    with pytest.raises(ExportError, match="'RGB'"):
        read_davis_png(tmp_path / "rgb.png")
