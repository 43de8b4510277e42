"""Annotator flows in the real Label Studio 1.23.2 editor (headless Chromium) against ``python -m backend serve``.

Each test does what the README's "Connect it in Label Studio" section tells an annotator to do, and asserts on what
the editor sent, what the backend answered and what Label Studio saved (its REST API). The model is ``tiny``
(random weights): these tests prove identity and flow, not mask quality. Screenshots: the folder printed at start.
"""

from __future__ import annotations

import re

import pytest

from tests.e2e.conftest import SHAPES, create_project, write_clip, write_shapes_image
from tests.served_backend import ServedBackend

OURS = re.compile(r"unipixel-\d+-[0-9a-f]{16}")
DECISION = re.compile(r"task (\d+): click (\S+) \((positive|negative), frame (\d+) at [^)]*\) "
                      r"(starts new object|adds to|removes from) (\S+)")


def _decisions(server, task: int) -> dict[str, tuple[str, str]]:
    """What the backend logged for each click of ``task``: click id -> (action, object region id)."""
    lines = server.log_path.read_text().splitlines()
    return {m[2]: (m[5], m[6]) for m in map(DECISION.search, lines) if m and int(m[1]) == task}


def _brush_ids(call) -> list[str]:
    assert call is not None and call.status == 200 and not call.errors, call and call.response
    return [r["id"] for r in call.returned_result if r["type"] == "brushlabels"]


def _saved(editor, task: int, kind: str = "brushlabels") -> list[dict]:
    (annotation,) = editor.saved_annotations(task)
    return [r for r in annotation["result"] if r["type"] == kind]


def _image_project(ls, backend, name: str) -> tuple[int, int]:
    image = write_shapes_image(ls.files_root / name / "shapes.png")
    made = create_project(ls, "image_segmentation", [{"data": {"image": ls.local_files_url(image)}}],
                          backend=backend, storage_dir=image.parent, title=name)
    return made["project"], made["tasks"][0]


def _start_clicking(editor, project: int, task: int, auto_accept: bool) -> None:
    editor.open_task(project, task)
    editor.set_auto_annotation(True)
    editor.set_auto_accept(auto_accept)
    editor.select_smart_tool("keypoint")


def _start_boxing(editor, project: int, task: int, auto_accept: bool) -> None:
    """README: Auto-Annotation on, Auto-Detect rectangle, the ``box`` label selected: ready to drag a box."""
    editor.open_task(project, task)
    editor.set_auto_annotation(True)
    editor.set_auto_accept(auto_accept)
    editor.select_smart_tool("rectangle")
    editor.select_label("box", "Object")


def _accept_pending(editor) -> None:
    """README: with Auto-Accept off, press ✓ (accept all) before Submit, so only accepted masks are saved."""
    if editor.state().get("suggestions"):
        editor.accept_all()


def _click(editor, shape: str, alt: bool = False, hide: bool = True):
    """README: hide the regions (eye button) so a click reaches the image, select the label, click."""
    if hide and [r for r in editor.regions() if not r["suggestion"]]:
        editor.set_all_regions_hidden(True)
    editor.select_label("click", "Object")
    return editor.click(*SHAPES[shape] if isinstance(shape, str) else shape, alt=alt, expect=True)


@pytest.mark.parametrize("count", [2, 3, 4])
@pytest.mark.parametrize("auto_accept", [True, False], ids=["auto-accept", "accept-with-check"])
def test_objects_clicked_one_after_another_are_as_many_regions(label_studio, backend_server, editor, auto_accept,
                                                                count):
    project, task = _image_project(label_studio, backend_server, f"objects-{count}-{auto_accept}")
    _start_clicking(editor, project, task, auto_accept)
    replies = [_brush_ids(_click(editor, shape)) for shape in list(SHAPES)[:count]]
    editor.screenshot(f"{count}-clicks")
    _accept_pending(editor)
    editor.submit()
    editor.screenshot("submitted")
    ids = {i for reply in replies for i in reply}
    decided = _decisions(backend_server, task)
    created = [region for action, region in decided.values() if action == "starts new object"]
    assert len(decided) == count and len(set(created)) == len(created) >= 1, decided  # each click decided once
    assert ids <= set(created) and all(OURS.fullmatch(i) for i in ids), (replies, decided)
    # Auto-Accept on: every answer was accepted; off: each answer replaced the pending suggestions, and ✓
    # accepted the last one (the backend re-sends every pending object in each answer)
    kept = ids if auto_accept else set(replies[-1])
    saved = _saved(editor, task)
    assert {r["id"] for r in saved} == kept and len(saved) == len(kept)  # none overwritten, none lost
    if auto_accept or replies[-1]:  # accepting deletes the smart clicks; with nothing to accept they stay (and
        assert not _saved(editor, task, "keypointlabels")  # are saved: the fine-tune reads only the masks)



@pytest.mark.parametrize("auto_accept", [True, False], ids=["after-accepting", "before-accepting"])
def test_alt_click_corrects_the_same_object(label_studio, backend_server, editor, auto_accept):
    project, task = _image_project(label_studio, backend_server, f"alt-click-{auto_accept}")
    _start_clicking(editor, project, task, auto_accept)
    (first,) = _brush_ids(_click(editor, "red_circle"))
    # An Alt-click arrives alone after accepting (Auto-Accept deletes the smart clicks), with the first click before.
    correction = _click(editor, (0.30, 0.45), alt=True)
    assert [c.get("is_positive") for c in correction.context_result] == ([False] if auto_accept else [True, False])
    alt_id = correction.context_result[-1]["id"]
    assert _decisions(backend_server, task)[alt_id] == ("removes from", first)  # never a new object, never an error
    assert set(_brush_ids(correction)) <= {first}  # refined in place, under its id
    _accept_pending(editor)
    editor.submit()
    # the refined mask replaces the first in place; before accepting, a correction the model answers with nothing
    # (tiny model) leaves no suggestion to accept
    expected = [first] if auto_accept or _brush_ids(correction) else []
    assert [r["id"] for r in _saved(editor, task)] == expected


def test_box_and_text_query_each_add_an_object(label_studio, backend_server, editor):
    project, task = _image_project(label_studio, backend_server, "box-and-text")
    _start_boxing(editor, project, task, auto_accept=True)
    before = len(editor.interactive_calls)
    editor.drag_box(0.55, 0.19, 0.92, 0.57)
    (box_call,) = editor.wait_interactive(before, expect=True)
    box_ids = _brush_ids(box_call)
    (sent_box,) = box_call.context_result
    assert sent_box["type"] == "rectanglelabels" and len(box_ids) <= 1  # one object per box
    text_call = editor.type_query("the red circle")
    text_ids = _brush_ids(text_call)
    editor.screenshot("box-and-text")
    editor.submit()
    assert not set(box_ids) & set(text_ids) and all(OURS.fullmatch(i) for i in [*box_ids, *text_ids])
    saved = _saved(editor, task)
    assert {r["id"] for r in saved} == {*box_ids, *text_ids} and len(saved) == len(box_ids) + len(text_ids)


def test_frame_list_correction_on_another_page_changes_the_same_object(label_studio, backend_server, editor):
    ls = label_studio
    folder = ls.files_root / "frame-list"
    frames = [write_shapes_image(folder / f"{k}.png", shift_x=12 * k) for k in range(3)]
    made = create_project(ls, "video_masks", [{"data": {"frames": [ls.local_files_url(p) for p in frames]}}],
                          backend=backend_server, storage_dir=folder, title="frame list")
    project, (task,) = made["project"], made["tasks"]
    _start_clicking(editor, project, task, auto_accept=False)
    editor.set_continuous_labeling(True)
    first_call = _click(editor, "red_circle", hide=False)
    first = _brush_ids(first_call)
    base = {_decisions(backend_server, task)[first_call.context_result[0]["id"]][1]}
    assert {i.rsplit("-f", 1)[0] for i in first} <= base  # one object: one region per frame, <id>-f<k>
    editor.next_page()
    editor.next_page()
    # Alt-click on page 3 (item_index 2): the page-1 click is sent along; both belong to the one object.
    correction = _click(editor, (0.62, 0.80), alt=True, hide=False)
    assert [c.get("item_index") for c in correction.context_result] == [0, 2]
    corrected = _brush_ids(correction)
    assert _decisions(backend_server, task)[correction.context_result[-1]["id"]] == ("removes from", base.pop())
    base = {first_call and i.rsplit("-f", 1)[0] for i in first + corrected}
    assert len(base) <= 1, (first, corrected)
    editor.screenshot("page-3-corrected")
    _accept_pending(editor)
    editor.submit()
    saved = _saved(editor, task)
    assert {r["id"].rsplit("-f", 1)[0] for r in saved} == base
    assert all(r["item_index"] == int(r["id"].rsplit("-f", 1)[1]) - 1 for r in saved)


def test_video_box_then_label_tracks_and_keeps_the_drawn_keyframe(label_studio, backend_server, editor):
    ls = label_studio
    clip = write_clip(ls.files_root / "video-flow" / "clip.mp4")
    made = create_project(ls, "video_tracking", [{"data": {"video": ls.local_files_url(clip)}}],
                          backend=backend_server, storage_dir=clip.parent, title="video flow", framerate=10)
    project, (task,) = made["project"], made["tasks"]
    editor.open_task(project, task)
    editor.set_auto_annotation(True)
    editor.seek_frame(6)
    assert editor.draw_video_box(0.2, 0.2, 0.7, 0.8) == []  # drawing alone sends nothing (EDITOR_NOTES.md)
    drawn = editor.select_region()
    before = len(editor.interactive_calls)
    editor.press_label("videoLabels", "Object")  # README: select the box, press its label
    (call,) = editor.wait_interactive(before, expect=True, settle_s=5)
    (sent,) = call.context_result
    tracks = [r for r in call.returned_result if r["type"] == "videorectangle"]
    editor.screenshot("tracked")
    assert call.status == 200 and not call.errors and len(tracks) <= 1, call.response
    if tracks:  # the tiny model may see nothing; when it answers, the track IS the drawn region
        (track,) = tracks
        assert track["id"] == drawn["id"] == sent["id"]
        keyframe = next(k for k in track["value"]["sequence"] if k["frame"] == 6)
        assert {k: keyframe[k] for k in ("x", "y", "width", "height")} == \
            {k: sent["value"]["sequence"][0][k] for k in ("x", "y", "width", "height")}
    editor.submit()
    saved = _saved(editor, task, "videorectangle")
    assert [r["id"] for r in saved] == [drawn["id"]]  # one region, the annotator's, never a duplicate
    assert any(k["frame"] == 6 for k in saved[0]["value"]["sequence"])


@pytest.mark.parametrize("auto_accept", [True, False], ids=["auto-accept", "accept-with-check"])
def test_backend_restart_mid_task_never_reuses_an_id(label_studio, e2e_env, editor, tmp_path, auto_accept):
    server = ServedBackend(e2e_env, tmp_path / "backend-1.log").wait()
    try:
        project, task = _image_project(label_studio, server, f"restart-{auto_accept}")
        _start_clicking(editor, project, task, auto_accept=auto_accept)
        (first,) = _brush_ids(_click(editor, "red_circle"))
        _accept_pending(editor)  # Auto-Accept off: ✓ before the restart, so the first object is the annotator's
        server.stop()
        server = ServedBackend(e2e_env, tmp_path / "backend-2.log", port=server.port).wait()
        second = _click(editor, "green_triangle")
        _accept_pending(editor)
        editor.submit()
        action, region = _decisions(server, task)[second.context_result[-1]["id"]]
        assert region != first and OURS.fullmatch(region)  # a restart never hands out an id again
        assert set(_brush_ids(second)) <= {region}
        assert {r["id"] for r in _saved(editor, task)} == {first, *_brush_ids(second)}
    finally:
        server.stop()
