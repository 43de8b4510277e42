"""Moving coloured shapes with exact masks: the synthetic world's scenes, deterministic from a seed.

A :class:`Clip` is what one seed makes: uint8 frames ``[T, H, W, 3]``, the *visible* mask of every
object on every frame ``bool[O, T, H, W]`` (occluders removed), and each object's description (shape,
colour, size, path). Shapes are drawn with hard edges, so the masks are the exact ground truth.

What varies per clip (all from :class:`WorldConfig`): the resolution and aspect ratio, the background
(plain, textured or noisy), 1-4 objects with distractors of the same colour or shape, sizes of 5-40 %
of the frame's shorter side, and paths that bounce, turn, enter or leave the frame and cross each other
(so objects occlude one another). On request (``p_touch``, off by default) a same-colour distractor is kept
touching the object it repeats, and (``p_striped``, off by default) objects are drawn with stripes of a second
colour: a kind of object the toy model never trains on, whose pieces no colour joins.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from finetune.world.geometry import ALL_SHAPES, HELD_OUT_SHAPES, SHAPES, inside, object_frame
from finetune.world.motion import against_px, path_px

__all__ = ["ALL_SHAPES", "BACKGROUNDS", "COLOURS", "HELD_OUT_SHAPES", "RESOLUTIONS_WH", "SHAPES", "Clip", "ObjectInfo",
           "WorldConfig", "make_clip", "shape_mask_px"]
COLOURS: dict[str, tuple[int, int, int]] = {
    "red": (215, 35, 35), "green": (40, 175, 55), "blue": (35, 75, 225), "yellow": (235, 215, 35),
    "white": (245, 245, 245), "orange": (245, 135, 25), "purple": (145, 55, 200), "cyan": (35, 205, 215),
}
BACKGROUNDS = ("plain", "textured", "noisy")
RESOLUTIONS_WH = ((320, 240), (256, 256), (384, 216), (240, 320), (352, 288))
# Muted background colours, far from every object colour so names stay unambiguous.
_BACKGROUND_RGB = ((40, 40, 45), (70, 70, 70), (95, 85, 75), (50, 60, 75), (75, 90, 80), (105, 100, 110))


@dataclass(frozen=True)
class WorldConfig:
    """What a set of clips may contain (defaults: the whole world).

    Attributes:
        num_frames: frames per clip (1 makes still images).
        resolutions_wh: (width, height) pixel sizes to draw from.
        objects: (min, max) objects per clip.
        shapes / colours: allowed shape and colour names.
        size_range: object extent as a fraction of the frame's shorter side.
        backgrounds: allowed background kinds.
        speed_range: object speed as a fraction of the shorter side per frame.
        p_distractor: chance that a new object repeats an earlier one's colour or shape.
        p_touch: chance that a distractor of the same colour is placed against the object it repeats and moves
            with it: two blobs of one colour that read as one (what a negative click must split). 0 draws
            nothing, so the default world is drawn as before.
        p_striped: chance that an object is striped: stripes of another world colour, a quarter of the object wide,
            across it (the active-learning check's new kind of object). 0 draws nothing, so the default world is drawn
            as before.
        p_enter / p_leave: chance that an object enters or leaves the frame during the clip.
        p_turn: chance that an object changes direction once during the clip.
        fps: frame rate written to videos.
    """

    num_frames: int = 24
    resolutions_wh: tuple[tuple[int, int], ...] = RESOLUTIONS_WH
    objects: tuple[int, int] = (1, 4)
    shapes: tuple[str, ...] = SHAPES
    colours: tuple[str, ...] = tuple(COLOURS)
    size_range: tuple[float, float] = (0.05, 0.40)
    backgrounds: tuple[str, ...] = BACKGROUNDS
    speed_range: tuple[float, float] = (0.004, 0.025)
    p_distractor: float = 0.5
    p_touch: float = 0.0
    p_striped: float = 0.0
    p_enter: float = 0.2
    p_leave: float = 0.2
    p_turn: float = 0.3
    fps: float = 25.0  # video_tracking.xml numbers frames at 25 fps

    def __post_init__(self) -> None:
        unknown = [s for s in self.shapes if s not in ALL_SHAPES] + [c for c in self.colours if c not in COLOURS]
        if unknown:
            raise ValueError(f"unknown shapes/colours {unknown}; shapes are {ALL_SHAPES}, colours {tuple(COLOURS)}")
        if self.num_frames < 1 or not 1 <= self.objects[0] <= self.objects[1]:
            raise ValueError(f"need num_frames >= 1 and 1 <= objects[0] <= objects[1], got {self.num_frames}, "
                             f"{self.objects}")
        if not 0 < self.size_range[0] <= self.size_range[1] <= 1:
            raise ValueError(f"size_range must be fractions 0 < lo <= hi <= 1, got {self.size_range}")
        for name in ("p_touch", "p_striped"):
            if not 0 <= getattr(self, name) <= 1:
                raise ValueError(f"{name} is a probability in [0, 1], got {getattr(self, name)}")
        if any(w % 2 or h % 2 for w, h in self.resolutions_wh):
            raise ValueError(f"resolutions must be even (H.264 needs it), got {self.resolutions_wh}")


@dataclass
class ObjectInfo:
    """One object of a clip.

    Attributes:
        shape / colour: names from :data:`ALL_SHAPES` / :data:`COLOURS`.
        rgb: its drawn colour (the named colour with a little jitter).
        size_px: extent (diameter, side or length) in pixels.
        centres_px: float [T, 2] (x, y) centre per frame, pixels (may lie outside the frame).
        angles_deg: float [T] rotation per frame.
        depth: drawing order; higher is nearer (occludes lower).
        stripe_rgb: the colour of its stripes, or None (one colour; :data:`WorldConfig.p_striped`).
    """

    shape: str
    colour: str
    rgb: tuple[int, int, int]
    size_px: float
    centres_px: np.ndarray
    angles_deg: np.ndarray
    depth: int
    stripe_rgb: tuple[int, int, int] | None = None

    @property
    def category(self) -> str:
        return f"{self.colour} {self.shape}"


@dataclass
class Clip:
    """A rendered scene.

    Attributes:
        seed: what made it (``make_clip(seed, config)`` gives it again).
        frames: uint8 [T, H, W, 3] RGB.
        masks: bool [O, T, H, W] visible pixels of each object (object order = ``objects``).
        objects: one :class:`ObjectInfo` per object.
        fps: frames per second.
        background: the background kind.
    """

    seed: int
    frames: np.ndarray
    masks: np.ndarray
    objects: list[ObjectInfo]
    fps: float
    background: str
    extra: dict = field(default_factory=dict)

    @property
    def num_frames(self) -> int:
        return int(self.frames.shape[0])

    @property
    def size_hw(self) -> tuple[int, int]:
        return int(self.frames.shape[1]), int(self.frames.shape[2])

    def visible_frames(self, obj: int, min_pixels: int = 1) -> list[int]:
        """0-based frames where object ``obj`` shows at least ``min_pixels`` pixels."""
        return [int(t) for t in np.nonzero(self.masks[obj].reshape(self.num_frames, -1).sum(1) >= min_pixels)[0]]


def make_clip(seed: int, config: WorldConfig = WorldConfig()) -> Clip:
    """The clip of ``seed``: the same seed and config always give the same pixels and masks."""
    rng = np.random.default_rng(seed)
    width, height = config.resolutions_wh[int(rng.integers(len(config.resolutions_wh)))]
    count = int(rng.integers(config.objects[0], config.objects[1] + 1))
    background = config.backgrounds[int(rng.integers(len(config.backgrounds)))]
    objects = _objects(rng, config, count, width, height)
    frames = np.empty((config.num_frames, height, width, 3), np.uint8)
    masks = np.zeros((count, config.num_frames, height, width), bool)
    base = _background(rng, background, width, height)
    for t in range(config.num_frames):
        frames[t] = _frame(rng, base, background, objects, t, masks[:, t])
    return Clip(seed, frames, masks, objects, config.fps, background)


# ---- objects (their paths: motion.py) ------------------------------------------------------
def _objects(rng: np.random.Generator, config: WorldConfig, count: int, width: int, height: int) -> list[ObjectInfo]:
    side = min(width, height)
    out: list[ObjectInfo] = []
    depths = rng.permutation(count)
    for n in range(count):
        shape = config.shapes[int(rng.integers(len(config.shapes)))]
        colour = config.colours[int(rng.integers(len(config.colours)))]
        other = None
        if out and rng.random() < config.p_distractor:  # a distractor: same colour or same shape as another
            other = out[int(rng.integers(len(out)))]
            if rng.random() < 0.5:
                colour = other.colour
            else:
                shape = other.shape
        size = float(rng.uniform(*config.size_range)) * side
        rgb = tuple(int(np.clip(c + rng.integers(-12, 13), 0, 255)) for c in COLOURS[colour])
        centres = path_px(rng, config, size, width, height)
        spin = float(rng.choice([0.0, rng.uniform(-4, 4)])) if shape not in ("circle", "ring") else 0.0
        angles = float(rng.uniform(0, 90)) + spin * np.arange(config.num_frames)
        touch = other is not None and other.colour == colour and config.p_touch  # p_touch 0 draws nothing
        if touch and rng.random() < config.p_touch:
            centres = against_px(other, shape, size, angles, float(rng.uniform(0, 2 * math.pi)))
        stripes = None
        if config.p_striped and rng.random() < config.p_striped:  # p_striped 0 draws nothing
            others = [c for c in COLOURS if c != colour]
            stripes = COLOURS[others[int(rng.integers(len(others)))]]
        out.append(ObjectInfo(shape, colour, rgb, size, centres, angles, int(depths[n]), stripes))
    return out


# ---- drawing -------------------------------------------------------------------------------
def _background(rng: np.random.Generator, kind: str, width: int, height: int) -> np.ndarray:
    base = np.array(_BACKGROUND_RGB[int(rng.integers(len(_BACKGROUND_RGB)))], np.float32)
    image = np.broadcast_to(base, (height, width, 3)).copy()
    if kind == "textured":  # low-contrast stripes or checks
        other = np.array(_BACKGROUND_RGB[int(rng.integers(len(_BACKGROUND_RGB)))], np.float32)
        period = float(rng.uniform(8, 32))
        yy, xx = np.mgrid[0:height, 0:width].astype(np.float32)
        angle = float(rng.uniform(0, math.pi))
        wave = np.sin((xx * math.cos(angle) + yy * math.sin(angle)) * 2 * math.pi / period)
        if rng.random() < 0.5:
            wave = wave * np.sin((yy * math.cos(angle) - xx * math.sin(angle)) * 2 * math.pi / period)
        image = image + (wave[..., None] > 0) * (other - base) * 0.6
    return image


def _frame(rng: np.random.Generator, base: np.ndarray, kind: str, objects: list[ObjectInfo], t: int,
           visible: np.ndarray) -> np.ndarray:
    """Draw frame ``t`` back to front; fills ``visible`` [O, H, W] with each object's visible pixels."""
    image = base.copy()
    if kind == "noisy":
        image = image + rng.normal(0, 14, image.shape).astype(np.float32)
    height, width = image.shape[:2]
    for n in sorted(range(len(objects)), key=lambda i: objects[i].depth):
        shape_mask = shape_mask_px(objects[n], t, height, width)
        image[shape_mask] = objects[n].rgb
        if objects[n].stripe_rgb is not None:
            image[shape_mask & _stripes_px(objects[n], t, height, width)] = objects[n].stripe_rgb
        visible[:, shape_mask] = False  # nearer objects hide what is behind them
        visible[n] = shape_mask
    return np.clip(image, 0, 255).astype(np.uint8)


def shape_mask_px(obj: ObjectInfo, t: int, height: int, width: int) -> np.ndarray:
    """bool [H, W]: the pixels whose centres lie inside ``obj`` on frame ``t`` (before occlusion)."""
    mask = np.zeros((height, width), bool)
    cx, cy = obj.centres_px[t]
    reach = obj.size_px * 0.75 + 1
    x0, x1 = max(0, int(cx - reach)), min(width, int(cx + reach) + 1)
    y0, y1 = max(0, int(cy - reach)), min(height, int(cy + reach) + 1)
    if x0 >= x1 or y0 >= y1:
        return mask
    yy, xx = np.mgrid[y0:y1, x0:x1].astype(np.float32) + 0.5
    mask[y0:y1, x0:x1] = inside(obj.shape, *object_frame(xx, yy, cx, cy, obj.angles_deg[t]), obj.size_px / 2)
    return mask


def _stripes_px(obj: ObjectInfo, t: int, height: int, width: int) -> np.ndarray:
    """bool [H, W]: every other band, a quarter of the object's size wide, across its own v axis (they turn and move
    with it)."""
    yy, xx = np.mgrid[0:height, 0:width].astype(np.float32) + 0.5
    u, _ = object_frame(xx, yy, *obj.centres_px[t], obj.angles_deg[t])
    return np.floor(u / max(2.0, obj.size_px / 4)) % 2 == 1
