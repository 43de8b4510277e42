"""Command line: ``python -m unipixel_model predict --model PATH|tiny --media FILE --text "..." --out DIR``.

Writes one PNG per object and frame (``obj<id>_frame<idx>.png``, 0/255), an overlay image or
video, and prints the answer. ``--point x,y,frame`` / ``--box x1,y1,x2,y2,frame`` (pixels,
0-based frame) add visual prompts as objects [1], [2], ...; the text is then the question asked
about them (it may refer to them as [1], [2]).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np

from unipixel_model.errors import UniPixelInputError
from unipixel_model.sam2_side import sam2_side_argument

_COLORS = np.array([[230, 25, 75], [60, 180, 75], [0, 130, 200], [245, 130, 48], [145, 30, 180]], np.uint8)


def _numbers(text: str, count: int, what: str) -> list[float]:
    parts = text.split(",")
    if len(parts) != count:
        raise argparse.ArgumentTypeError(f"{what} needs {count} comma-separated numbers, got {text!r}")
    return [float(p) for p in parts]


def _prompts(args):
    from unipixel_model.types import BoxPrompt, PointPrompt

    prompts = [PointPrompt(*_numbers(p, 3, "--point")[:2], int(_numbers(p, 3, "--point")[2])) for p in args.point]
    prompts += [BoxPrompt(*_numbers(b, 5, "--box")[:4], int(_numbers(b, 5, "--box")[4])) for b in args.box]
    return {i + 1: p for i, p in enumerate(prompts)}


def _write_outputs(session, tracks, out: Path) -> None:
    import cv2

    out.mkdir(parents=True, exist_ok=True)
    frames = session.frames
    overlay_frames = []
    for frame_idx in range(frames.num_frames):
        frame = frames.take([frame_idx])[0].copy()
        for n, track in enumerate(tracks):
            mask = track.mask(frame_idx)
            cv2.imwrite(str(out / f"obj{track.obj_id}_frame{frame_idx:05d}.png"), mask.astype(np.uint8) * 255)
            frame[mask] = (0.5 * frame[mask] + 0.5 * _COLORS[n % len(_COLORS)]).astype(np.uint8)
        overlay_frames.append(frame)
    if frames.is_image:
        cv2.imwrite(str(out / "overlay.png"), cv2.cvtColor(overlay_frames[0], cv2.COLOR_RGB2BGR))
        return
    height, width = frames.size_hw
    writer = cv2.VideoWriter(str(out / "overlay.mp4"), cv2.VideoWriter_fourcc(*"mp4v"), frames.fps or 25.0, (width, height))
    for frame in overlay_frames:
        writer.write(cv2.cvtColor(frame, cv2.COLOR_RGB2BGR))
    writer.release()


def predict(args) -> int:
    from unipixel_model.loading import from_pretrained, resolve_checkpoint
    from unipixel_model.session import InferenceSession
    from unipixel_model.tokenization import load_tokenizer

    path = resolve_checkpoint(args.model)
    model = from_pretrained(path, device=args.device, sam2_image_size=args.sam2_image_size)
    session = InferenceSession.open(model, load_tokenizer(path), args.media)
    prompts = _prompts(args)
    if prompts:
        result = session.refer(prompts, args.text)
    else:
        result = session.segment(args.text)
    _write_outputs(session, result.tracks, args.out)
    print(result.text)
    for track in result.tracks:
        print(f"[{track.obj_id}] score {track.score():.3f}, visible on "
              f"{sum(track.visible(i) for i in track.frame_idx)} of {track.num_frames} frames", file=sys.stderr)
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m unipixel_model", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    cmd = sub.add_parser("predict", help="segment / describe objects in an image or video")
    cmd.add_argument("--model", default="tiny", help="checkpoint dir, hub id, tiny, toy or random-3b")
    cmd.add_argument("--media", required=True, type=Path, help="image, video or folder of frames")
    cmd.add_argument("--text", default=None, help="query or question")
    cmd.add_argument("--point", action="append", default=[], metavar="X,Y,FRAME")
    cmd.add_argument("--box", action="append", default=[], metavar="X1,Y1,X2,Y2,FRAME")
    cmd.add_argument("--out", required=True, type=Path)
    cmd.add_argument("--device", default="cpu")
    cmd.add_argument("--sam2-image-size", type=sam2_side_argument, default=None,
                     help="SAM 2's input side in pixels (a multiple of 16) instead of the "
                     "checkpoint's: the toy's masks gain at 192 (README: The toy model)")
    args = parser.parse_args(argv)
    if not args.text and not args.point and not args.box:
        parser.error("give --text, or at least one --point/--box")
    try:
        return predict(args)
    except (UniPixelInputError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
