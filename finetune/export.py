"""Exports of a project's object masks as COCO RLE JSON and DAVIS-style PNGs, free of Label Studio.

Input is one :class:`ExportItem` per task/video: pixel masks ``bool[H, W]`` per 0-based ``frame_idx``
and per object id (the LS region id, ≥ 1). A frame with no mask for an object means "empty".
``frame_names`` are file stems without extension (``"00000"``): PNGs are written as
``<frame_name>.png``, as DAVIS and UniPixel's ``eval_seg.py`` expect.

Layouts written:

* :func:`write_coco_rle` — one COCO JSON. Standard keys plus ``task_id``/``object_id``/``frame_idx`` on
  each annotation, ``video_id``/``frame_idx`` on each image, and a top-level ``videos`` list holding
  each item's name, frame names and object labels, so that :func:`read_coco_rle` restores the items
  exactly (objects or frames without any mask included). Empty masks get no annotation.
* :func:`write_davis_pngs` — ``<out>/<name>/<frame_name>.png`` indexed ('P') PNGs, pixel value =
  object id, 0 = background, DAVIS (PASCAL VOC) palette. Where objects overlap, the **higher object id
  wins** (objects are painted in ascending id order). With ``per_object=True``:
  ``<out>/<name>/<obj_id>/<frame_name>.png``, one 0/255 'L' PNG per object and frame (UniPixel's
  prediction layout, with the object id in place of the expression id).
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image
from pycocotools import mask as mask_utils

from backend.converters.coco_rle import CocoRLEError, coco_rle_to_mask, mask_to_coco_rle


class ExportError(ValueError):
    """An export item is inconsistent, or a file is not in the format this module writes."""


@dataclass
class ObjectMasks:
    """One object's masks: ``masks[frame_idx]`` is bool [H, W] (non-zero = object); missing = empty."""

    label: str
    masks: dict[int, np.ndarray] = field(default_factory=dict)


@dataclass
class ExportItem:
    """One task (video or image) to export.

    Attributes:
        task_id: LS task id.
        name: folder name of the video in the DAVIS layout (no path separators).
        frame_names: file stems of the frames, in order; ``frame_idx`` indexes this list.
        size_hw: (H, W) of every frame, pixels.
        objects: object id (≥ 1; ≤ 255 for DAVIS PNGs) → its masks.

    Raises:
        ExportError: on a bad name, duplicate frame names, a frame_idx out of range or a mask of the
            wrong shape.
    """

    task_id: int
    name: str
    frame_names: list[str]
    size_hw: tuple[int, int]
    objects: dict[int, ObjectMasks] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.size_hw = (int(self.size_hw[0]), int(self.size_hw[1]))
        _check_path_part("name", self.name)
        for frame_name in self.frame_names:
            _check_path_part("frame name", frame_name)
        if len(set(self.frame_names)) != len(self.frame_names):
            raise ExportError(f"task {self.task_id}: frame_names has duplicates ({len(self.frame_names)} names)")
        if min(self.size_hw) < 1:
            raise ExportError(f"task {self.task_id}: size_hw must be positive, got {self.size_hw}")
        for obj_id, obj in self.objects.items():
            if int(obj_id) < 1:
                raise ExportError(f"task {self.task_id}: object id {obj_id} must be ≥ 1 (0 is background)")
            for frame_idx, mask in obj.masks.items():
                if not 0 <= frame_idx < len(self.frame_names):
                    raise ExportError(
                        f"task {self.task_id} object {obj_id}: frame_idx {frame_idx} outside "
                        f"[0, {len(self.frame_names) - 1}]"
                    )
                if np.shape(mask) != self.size_hw:
                    raise ExportError(
                        f"task {self.task_id} object {obj_id} frame {frame_idx}: mask shape "
                        f"{np.shape(mask)} != size_hw {self.size_hw}"
                    )

    def object_volume(self, obj_id: int) -> np.ndarray:
        """bool [T, H, W] of one object over all frames (empty where it has no mask)."""
        volume = np.zeros((len(self.frame_names), *self.size_hw), dtype=bool)
        for frame_idx, mask in self.objects[obj_id].masks.items():
            volume[frame_idx] = np.asarray(mask) != 0
        return volume


def _check_path_part(what: str, value: str) -> None:
    """Names become path components: refuse empty names, separators and '.'/'..'."""
    if not value or "/" in value or "\\" in value or value in (".", ".."):
        raise ExportError(f"{what} {value!r} cannot be used as a file name; use a plain name without '/'")


def davis_palette() -> np.ndarray:
    """The DAVIS / PASCAL VOC palette, uint8 [256, 3]: id 1 = (128, 0, 0), 2 = (0, 128, 0), ..."""
    palette = np.zeros((256, 3), dtype=np.uint8)
    for idx in range(256):
        r = g = b = 0
        c = idx
        for bit in range(8):  # spread the id's bits over the three channels, high bit first
            r |= ((c >> 0) & 1) << (7 - bit)
            g |= ((c >> 1) & 1) << (7 - bit)
            b |= ((c >> 2) & 1) << (7 - bit)
            c >>= 3
        palette[idx] = (r, g, b)
    return palette


def encode_coco_rle(mask: np.ndarray) -> dict:
    """bool [H, W] → COCO compressed RLE ``{"size": [H, W], "counts": str}`` (pycocotools)."""
    return mask_to_coco_rle(mask)


def decode_coco_annotation(annotation: dict) -> np.ndarray:
    """A COCO annotation (or bare RLE dict) with compressed or uncompressed RLE → bool [H, W]."""
    rle = annotation.get("segmentation", annotation)
    if not isinstance(rle, dict) or "counts" not in rle or "size" not in rle:
        raise ExportError(f"annotation {annotation.get('id')} has no RLE segmentation (polygons are not supported)")
    try:
        return coco_rle_to_mask(rle)  # compressed or uncompressed counts
    except CocoRLEError as err:
        raise ExportError(f"annotation {annotation.get('id')}: {err}") from None


def _categories(items: list[ExportItem]) -> dict[str, int]:
    """Label → category id, 1-based in sorted label order (stable across runs)."""
    labels = sorted({obj.label for item in items for obj in item.objects.values()})
    return {label: idx for idx, label in enumerate(labels, start=1)}


def to_coco_dict(items: list[ExportItem]) -> dict:
    """Build the COCO dictionary written by :func:`write_coco_rle` (see the module docstring)."""
    category_ids = _categories(items)
    coco: dict = {"videos": [], "images": [], "annotations": [], "categories": []}
    coco["categories"] = [{"id": cid, "name": label} for label, cid in category_ids.items()]
    for video_id, item in enumerate(items, start=1):
        height, width = item.size_hw
        objects = [{"object_id": int(oid), "label": obj.label} for oid, obj in sorted(item.objects.items())]
        coco["videos"].append(
            {
                "id": video_id,
                "task_id": item.task_id,
                "name": item.name,
                "frame_names": list(item.frame_names),
                "height": height,
                "width": width,
                "objects": objects,
            }
        )
        first_image_id = len(coco["images"]) + 1
        for frame_idx, frame_name in enumerate(item.frame_names):
            coco["images"].append(
                {
                    "id": first_image_id + frame_idx,
                    "file_name": f"{item.name}/{frame_name}",
                    "height": height,
                    "width": width,
                    "video_id": video_id,
                    "frame_idx": frame_idx,
                }
            )
        for obj_id, obj in sorted(item.objects.items()):
            for frame_idx, mask in sorted(obj.masks.items()):
                if not np.any(mask):
                    continue  # an empty mask is the same as no mask: no annotation
                rle = encode_coco_rle(mask)
                coco["annotations"].append(
                    {
                        "id": len(coco["annotations"]) + 1,
                        "image_id": first_image_id + frame_idx,
                        "category_id": category_ids[obj.label],
                        "segmentation": rle,
                        "area": int(mask_utils.area(rle)),
                        "bbox": [float(v) for v in mask_utils.toBbox(rle)],
                        "iscrowd": 0,
                        "task_id": item.task_id,
                        "object_id": int(obj_id),
                        "frame_idx": frame_idx,
                    }
                )
    return coco


def write_coco_rle(items: list[ExportItem], path: str | os.PathLike) -> Path:
    """Write the items as one COCO RLE JSON file, atomically (temp file in the same folder + os.replace).

    Args:
        items: the tasks to export.
        path: target ``.json`` path; its folder is created.

    Returns:
        The written path.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    coco = to_coco_dict(items)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(coco, fh)
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    return path


def read_coco_rle(path: str | os.PathLike) -> list[ExportItem]:
    """Read a file written by :func:`write_coco_rle` back into items (masks only on non-empty frames).

    Raises:
        ExportError: the file lacks the ``videos`` list that :func:`write_coco_rle` adds.
    """
    coco = json.loads(Path(path).read_text(encoding="utf-8"))
    if "videos" not in coco:
        raise ExportError(f"{path}: no 'videos' list; decode plain COCO files with decode_coco_annotation()")
    images = {image["id"]: image for image in coco["images"]}
    items: dict[int, ExportItem] = {}
    for video in coco["videos"]:
        objects = {o["object_id"]: ObjectMasks(label=o["label"]) for o in video["objects"]}
        items[video["id"]] = ExportItem(
            task_id=video["task_id"],
            name=video["name"],
            frame_names=list(video["frame_names"]),
            size_hw=(video["height"], video["width"]),
            objects=objects,
        )
    for annotation in coco["annotations"]:
        image = images[annotation["image_id"]]
        obj = items[image["video_id"]].objects[annotation["object_id"]]
        obj.masks[image["frame_idx"]] = decode_coco_annotation(annotation)
    return list(items.values())


def label_map(item: ExportItem, frame_idx: int) -> np.ndarray:
    """uint8 [H, W] object-id map of one frame: 0 = background, the higher id wins on overlap."""
    out = np.zeros(item.size_hw, dtype=np.uint8)
    for obj_id in sorted(item.objects):
        if obj_id > 255:
            raise ExportError(f"task {item.task_id}: object id {obj_id} does not fit an 8-bit PNG (max 255)")
        mask = item.objects[obj_id].masks.get(frame_idx)
        if mask is not None:
            out[np.asarray(mask) != 0] = obj_id
    return out


def write_davis_pngs(items: list[ExportItem], out_dir: str | os.PathLike, per_object: bool = False) -> Path:
    """Write DAVIS-style PNGs, one per frame (and per object with ``per_object=True``).

    Args:
        items: the tasks to export; object ids must be 1..255.
        out_dir: root folder, created if needed.
        per_object: False → ``<out>/<name>/<frame>.png`` palette PNGs holding object ids;
            True → ``<out>/<name>/<obj_id>/<frame>.png`` 0/255 grayscale PNGs (UniPixel layout).

    Returns:
        ``out_dir`` as a Path.

    Raises:
        ExportError: an object id above 255 in the palette layout.
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    palette = davis_palette().tobytes()
    for item in items:
        for frame_idx, frame_name in enumerate(item.frame_names):
            if per_object:
                for obj_id in sorted(item.objects):
                    mask = item.objects[obj_id].masks.get(frame_idx)
                    pixels = np.zeros(item.size_hw, dtype=np.uint8)
                    if mask is not None:
                        pixels[np.asarray(mask) != 0] = 255
                    target = out_dir / item.name / str(obj_id) / f"{frame_name}.png"
                    target.parent.mkdir(parents=True, exist_ok=True)
                    Image.fromarray(pixels).save(target)
            else:
                image = Image.fromarray(label_map(item, frame_idx))
                image.putpalette(palette)  # turns the 'L' image into an indexed 'P' image
                target = out_dir / item.name / f"{frame_name}.png"
                target.parent.mkdir(parents=True, exist_ok=True)
                image.save(target)
    return out_dir


def read_davis_png(path: str | os.PathLike) -> np.ndarray:
    """Read a DAVIS palette PNG (object ids) or a grayscale PNG (0/255) as uint8 [H, W].

    Raises:
        ExportError: the PNG is neither indexed ('P') nor grayscale ('L'), e.g. an RGB rendering.
    """
    with Image.open(path) as image:
        if image.mode not in ("P", "L"):
            raise ExportError(f"{path}: mode {image.mode!r}; expected an indexed 'P' or grayscale 'L' PNG")
        return np.array(image, dtype=np.uint8)
