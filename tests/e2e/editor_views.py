"""The harness's (:mod:`tests.e2e.editor`) views of the media and the regions: the pager of a frame list, the video
timeline and its canvas, and selecting or hiding regions."""

from __future__ import annotations

import time

from tests.e2e.editor_calls import EditorError, InteractiveCall


class EditorViews:
    """Mixin of :class:`tests.e2e.editor.Editor` (uses its ``page``, ``pump``, ``wait_until``, ``wait_interactive``,
    ``image_box``, ``regions`` and ``interactive_calls``)."""

    # --- multi-image pager (<Image valueList>) ---

    def current_page(self, object_name: str | None = None) -> int:
        """0-based index of the shown image of a ``valueList`` Image."""
        return self.image_box(object_name)["page"]

    def _wait_page(self, k: int, object_name: str | None) -> None:
        self.wait_until(lambda: self.page.evaluate(
            """([name, k]) => { const t = Array.from(window.Htx.annotationStore.selected.names.values())
                 .find(t => t.type === 'image' && (!name || t.name === name));
               return t && t.currentImage === k && t.imageIsLoaded; }""", [object_name, k]),
            f"image page {k}", timeout_s=30)  # fmt: skip
        self.pump(0.3)

    def next_page(self, object_name: str | None = None) -> int:
        """The pager's ">" button; returns the new 0-based page."""
        k = self.current_page(object_name) + 1
        self.page.locator(".lsf-pagination__btn_arrow-right:not(.lsf-pagination__btn_arrow-right-double)").first.click()
        self._wait_page(k, object_name)
        return k

    def prev_page(self, object_name: str | None = None) -> int:
        """The pager's "<" button; returns the new 0-based page."""
        k = self.current_page(object_name) - 1
        self.page.locator(".lsf-pagination__btn_arrow-left:not(.lsf-pagination__btn_arrow-left-double)").first.click()
        self._wait_page(k, object_name)
        return k

    def goto_page(self, k: int, object_name: str | None = None) -> None:
        """Type ``k + 1`` into the pager's "N of M" indicator (k is 0-based, like ``item_index``)."""
        if self.current_page(object_name) == k:
            return
        self.page.locator(".lsf-pagination__page-indicator").first.click()
        field_ = self.page.locator(".lsf-pagination__input input").first
        field_.fill(str(k + 1))
        field_.press("Enter")
        self._wait_page(k, object_name)

    # --- video ---

    def video_state(self) -> dict:
        """The Video tag: 1-based ``frame``, ``length``, ``framerate``, natural ``width``/``height``, fit ``ratio``."""
        state = self.page.evaluate(
            """() => {
                 const tag = Array.from(window.Htx.annotationStore.selected.names.values())
                   .find(t => t.type === 'video');
                 if (!tag) return null;
                 const d = (tag.ref.current && tag.ref.current.videoDimensions) || {};
                 return {frame: tag.frame, length: tag.length, framerate: Number(tag.framerate), name: tag.name,
                         width: d.width, height: d.height, ratio: d.ratio};
               }""")  # fmt: skip
        if not state:
            raise EditorError("no Video object in this config")
        return state

    def video_frame(self) -> int:
        """The current (1-based) video frame."""
        return self.video_state()["frame"]

    def seek_frame(self, frame: int, timeout_s: float = 30.0) -> None:
        """Go to a 1-based frame (``Video.setFrame``, what the timeline calls; no stable UI hook for it).

        Repeated until the store shows the frame: a seek issued before the <video> element can play is dropped.
        """
        deadline = time.monotonic() + timeout_s
        while True:
            self.page.evaluate("(f) => Array.from(window.Htx.annotationStore.selected.names.values())"
                               ".find(t => t.type === 'video').setFrame(f)", frame)
            try:
                self.wait_until(lambda: self.video_frame() == frame, f"video frame {frame}", timeout_s=2)
                break
            except EditorError:
                if time.monotonic() > deadline:
                    raise
        self.pump(0.5)

    def video_to_screen(self, fx: float, fy: float) -> tuple[float, float]:
        """Map fractions of the video frame to page coordinates.

        The regions' Konva stage (``.konvajs-content``) covers the video canvas; the frame is drawn centred at
        ``videoDimensions.ratio`` (fit) scale. Assumes no user zoom/pan.
        """
        a = self.page.evaluate(
            """() => {
                 const els = Array.from(document.querySelectorAll('.konvajs-content'));
                 const area = e => { const r = e.getBoundingClientRect(); return r.width * r.height; };
                 const el = els.sort((a, b) => area(b) - area(a))[0];
                 if (!el) return null;
                 const r = el.getBoundingClientRect();
                 return {left: r.left, top: r.top, width: r.width, height: r.height};
               }""")  # fmt: skip
        v = self.video_state()
        if not a or not v.get("width"):
            raise EditorError(f"video not laid out: stage={a} video={v}")
        scale = v.get("ratio") or min(a["width"] / v["width"], a["height"] / v["height"])
        w, h = v["width"] * scale, v["height"] * scale
        return a["left"] + (a["width"] - w) / 2 + fx * w, a["top"] + (a["height"] - h) / 2 + fy * h

    def draw_video_box(self, x1: float, y1: float, x2: float, y2: float, settle_s: float = 2.0
                       ) -> list[InteractiveCall]:  # fmt: skip
        """Drag a VideoRectangle on the current frame (fractions of the frame); returns the interactive calls made
        meanwhile (the OSS 1.23.2 editor sends none for drawing alone)."""
        before = len(self.interactive_calls)
        p1, p2 = self.video_to_screen(x1, y1), self.video_to_screen(x2, y2)
        self.page.mouse.move(*p1)
        self.page.mouse.down()
        self.page.mouse.move(*p2, steps=8)
        self.page.mouse.up()
        return self.wait_interactive(before, expect=False, settle_s=settle_s)

    def select_region(self, region_id: str | None = None, via: str = "list") -> dict:
        """Select a region (default: the newest non-suggestion) and return its :meth:`regions` entry.

        Args:
            via: ``"list"`` clicks its number in the Regions panel (``.lsf-tree__node`` rows in the panel's order,
                matched by the row's ``.lsf-outliner-item__index`` = position + 1 in "By Time" order);
                ``"canvas"`` clicks the centre of a video box on the current frame; ``"store"`` calls
                ``annotation.selectArea``.
        """
        regions = [r for r in self.regions() if not r["suggestion"]]
        if not regions:
            raise EditorError("no region to select")
        target = next((r for r in regions if r["id"] == region_id), None) if region_id else regions[-1]
        if target is None:
            raise EditorError(f"no region {region_id}; have {[r['id'] for r in regions]}")
        if via == "list":
            index = [r["key"] for r in regions].index(target["key"])
            self.page.locator(".lsf-tree__node .lsf-outliner-item__index").nth(index).click()
        elif via == "canvas":
            seq = (target.get("value") or {}).get("sequence") or []
            frame = self.video_frame()
            keys = [k for k in seq if k["frame"] <= frame] or seq
            if not keys:
                raise EditorError(f"region {target['id']} has no box to click")
            k = keys[-1]
            self.page.mouse.click(*self.video_to_screen((k["x"] + k["width"] / 2) / 100,
                                                        (k["y"] + k["height"] / 2) / 100))
        else:
            self.page.evaluate("(key) => { const a = window.Htx.annotationStore.selected;"
                               " a.selectArea(a.areas.get(key)); }", target["key"])
        self.wait_until(lambda: any(r["selected"] and r["key"] == target["key"] for r in self.regions()),
                        f"region {target['id']} selected via {via}", timeout_s=5)
        return target

    def set_all_regions_hidden(self, hidden: bool = True) -> None:
        """Regions panel eye button ("Hide all regions" / "Show all regions").

        A click over a visible region *selects that region* instead of reaching the tool (ImageView.handleOnClick:
        hovered region wins), so a smart click on top of an accepted mask makes no keypoint. Hiding the regions
        first lets the click through.
        """
        label = "Hide all regions" if hidden else "Show all regions"
        button = self.page.locator(f"button[aria-label='{label}']")
        if button.count():
            button.first.click()
        self.wait_until(lambda: all(r["hidden"] == hidden for r in self.regions() if not r["suggestion"]),
                        f"all regions hidden={hidden}", timeout_s=5)

    def unselect_all(self) -> None:
        """Press Escape on the canvas area: unselects the selected region (labels stay as they are)."""
        self.page.keyboard.press("Escape")
        self.pump(0.2)
