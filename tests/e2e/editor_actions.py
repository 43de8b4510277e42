"""The harness's (:mod:`tests.e2e.editor`) actions in the editor: toggles, tools and labels, clicks, drags and brush
strokes on an image, text queries, and accepting or rejecting suggestions. Each waits for the interactive request it
causes, if any, and returns it."""

from __future__ import annotations

import re

from tests.e2e.editor_calls import EditorError, InteractiveCall

# Tool names (the toolbar buttons' aria-label = kebab-case of the mobx tool type) per smart tool kind.
SMART_TOOLS = {
    "keypoint": ("KeyPointTool", "key-point-tool"),
    "rectangle": ("RectangleTool", "rectangle-tool"),
    "rectangle3point": ("Rectangle3PointTool", "rectangle-3-point-tool"),
    "brush": ("BrushTool", "brush-tool"),
}


class EditorActions:
    """Mixin of :class:`tests.e2e.editor.Editor` (uses its ``page``, ``state``, ``pump``, ``wait_until``,
    ``wait_interactive`` and ``interactive_calls``)."""

    # --- settings and toggles ---

    def _set_toggle(self, testid: str, on: bool, store_flag: str) -> None:
        toggle = self.page.locator(f"[data-testid={testid}]")
        if toggle.count() == 0:
            raise EditorError(f"toggle [data-testid={testid}] is not rendered; state={self.state()}")
        if toggle.is_checked() != on:
            toggle.click(force=True)  # the <input> is visually hidden behind the styled indicator
        self.wait_until(lambda: self.page.evaluate(f"() => !!window.Htx.{store_flag}") == on,
                        f"Htx.{store_flag} == {on}", timeout_s=5)

    def set_auto_annotation(self, on: bool = True) -> None:
        """Bottom-bar "Auto-Annotation" toggle (``localStorage.autoAnnotation``). Only rendered when the project has
        an ML backend with "Interactive preannotations" on at page load."""
        self._set_toggle("bottombar-auto-annotation-toggle", on, "autoAnnotation")

    def set_auto_accept(self, on: bool = True) -> None:
        """Bottom-bar "Auto-Accept Suggestions" toggle (``localStorage.autoAcceptSuggestions``). Rendered only with
        Auto-Annotation on, on an object that shows suggestions (Image), and while no suggestion is pending."""
        self._set_toggle("bottombar-auto-accept-toggle", on, "autoAcceptSuggestions")

    def set_continuous_labeling(self, on: bool = True) -> None:
        """Editor setting "Keep label selected after creating a region" (``settings.continuousLabeling``, saved in
        ``localStorage["labelStudio:settings"]``), through the bottom-bar settings (gear) dialog."""
        if self.page.evaluate("() => window.Htx.settings.continuousLabeling") == on:
            return
        self.page.click("[data-testid=bottombar-settings-button]")
        field_ = self.page.locator("label.lsf-settings__field", has_text="Keep label selected after creating a region")
        field_.wait_for(state="visible")
        self.pump(0.5)  # the dialog animates in; a click during the animation is lost
        field_.locator("input[type=checkbox]").click(force=True)
        self.wait_until(lambda: self.page.evaluate("() => window.Htx.settings.continuousLabeling") == on,
                        f"settings.continuousLabeling == {on}", timeout_s=5)
        self.page.keyboard.press("Escape")  # closes the antd modal (it stays in the DOM, hidden)
        fields = self.page.locator("label.lsf-settings__field").first
        try:
            fields.wait_for(state="hidden", timeout=3000)
        except Exception:  # noqa: BLE001  (Escape did not close it: use the dialog's close button)
            self.page.locator(".ant-modal-close").first.click(timeout=3000)
            fields.wait_for(state="hidden", timeout=5000)

    # --- tools and labels ---

    def select_smart_tool(self, kind: str = "keypoint") -> None:
        """Pick the Auto-Detect (smart) variant of a tool: hover the toolbar's "Auto-Detect" button and click the
        tool in its flyout (``.lsf-tool__extra button[aria-label=key-point-tool]`` etc.). Needs Auto-Annotation on.

        Args:
            kind: ``keypoint``, ``rectangle``, ``rectangle3point`` or ``brush``.
        """
        tool_name, aria = SMART_TOOLS[kind]
        auto_detect = self.page.locator("button.lsf-tool_smart:not([aria-label])").first
        if auto_detect.count() == 0:
            raise EditorError(f"no Auto-Detect button (Auto-Annotation off, or no smart control); state={self.state()}")
        auto_detect.hover()
        self.page.locator(f".lsf-tool__extra button[aria-label={aria}]").first.click()
        self.wait_until(lambda: any(t["tool"] == tool_name and t["dynamic"] for t in self.state()["tools"]),
                        f"the smart {tool_name} to be selected", timeout_s=5)
        self.page.mouse.move(2, 2)  # close the flyout

    def select_tool(self, aria_label: str) -> None:
        """Pick an ordinary toolbar tool by its aria-label (``brush-tool``, ``key-point-tool``, ``rectangle-tool``,
        ``move-tool``, ``pan``, ``zoom-in``, ``zoom-out``, ``eraser``)."""
        self.page.locator(f"button.lsf-tool[aria-label={aria_label}]:not(.lsf-tool__extra *)").first.click()

    def _label_info(self, control: str, value: str) -> dict:
        info = self.page.evaluate(
            """([control, value]) => {
                 const names = Array.from(window.Htx.annotationStore.selected.names.values())
                   .filter(t => t.type && (t.type === 'labels' || t.type.endsWith('labels')) && t.children);
                 const index = names.findIndex(t => t.name === control);
                 if (index < 0) return null;
                 const labels = names[index].children;
                 const li = labels.findIndex(l => l.value === value);
                 return li < 0 ? null : {index, li, hotkey: labels[li].hotkey, selected: labels[li].selected};
               }""", [control, value])  # fmt: skip
        if info is None:
            raise EditorError(f"no label {value!r} in control {control!r}")
        return info

    def label_selected(self, control: str, value: str) -> bool:
        return bool(self._label_info(control, value)["selected"])

    def select_label(self, control: str, value: str, via: str = "click", ensure: bool = True) -> None:
        """Select (toggle on) label ``value`` of ``control`` (e.g. ``"click"``, ``"Object"``).

        ``via="click"`` clicks its button (``.lsf-labels`` containers are in config order, ``.lsf-label`` inside);
        ``via="hotkey"`` presses its hotkey (auto-assigned 1, 2, 3, ... over all labels in config order). With a
        region selected this *labels that region* (and, for smart controls, sends an interactive request).
        With ``ensure`` an already selected label is left alone (a second press would deselect it).
        """
        info = self._label_info(control, value)
        if ensure and info["selected"]:
            return
        if via == "hotkey":
            if not info["hotkey"]:
                raise EditorError(f"label {control}/{value} has no hotkey")
            self.page.keyboard.press(str(info["hotkey"]))
        else:
            container = self.page.locator(".lsf-labels").nth(info["index"])
            exact = re.compile(f"^{re.escape(value)}$")
            container.locator(".lsf-label", has=self.page.locator(".lsf-label__text", has_text=exact)).first.click()
        if ensure:
            self.wait_until(lambda: self.label_selected(control, value), f"label {control}/{value} selected", 5)

    def press_label(self, control: str, value: str, via: str = "click") -> None:
        """Click (or hotkey) a label unconditionally: with a region selected this applies it to the region."""
        self.select_label(control, value, via=via, ensure=False)

    # --- image actions ---

    def image_box(self, object_name: str | None = None) -> dict:
        """Screen box of the shown image (``Image.imageRef``, after zoom/pan) and its natural size."""
        box = self.page.evaluate(
            """(name) => {
                 const tags = Array.from(window.Htx.annotationStore.selected.names.values())
                   .filter(t => t.type === 'image');
                 const tag = name ? tags.find(t => t.name === name) : tags[0];
                 if (!tag || !tag.imageRef) return null;
                 const r = tag.imageRef.getBoundingClientRect();
                 return {left: r.left, top: r.top, width: r.width, height: r.height, name: tag.name,
                         natural_width: tag.naturalWidth, natural_height: tag.naturalHeight,
                         zoom: tag.zoomScale, page: tag.currentImage ?? 0};
               }""", object_name)  # fmt: skip
        if not box or not box["width"]:
            raise EditorError(f"no rendered image {object_name or ''}; state={self.state()}")
        return box

    def to_screen(self, fx: float, fy: float, object_name: str | None = None) -> tuple[float, float]:
        """Map fractions of the natural image size to page coordinates."""
        box = self.image_box(object_name)
        return box["left"] + fx * box["width"], box["top"] + fy * box["height"]

    def click(self, fx: float, fy: float, alt: bool = False, object_name: str | None = None,
              expect: bool | None = None, settle_s: float = 1.5) -> InteractiveCall | None:
        """Click the image at (fx, fy) (fractions of the natural size); ``alt`` holds Alt (a negative smart click).

        Waits for the interactive request it causes (see :meth:`wait_interactive`) and returns the last one, or None.
        """
        x, y = self.to_screen(fx, fy, object_name)
        before = len(self.interactive_calls)
        if alt:
            self.page.keyboard.down("Alt")
        try:
            self.page.mouse.click(x, y)
        finally:
            if alt:
                self.page.keyboard.up("Alt")
        new = self.wait_interactive(before, expect=expect, settle_s=settle_s)
        return new[-1] if new else None

    def drag(self, points: list[tuple[float, float]], object_name: str | None = None, steps: int = 8) -> None:
        """Press at the first point, move through the rest, release (image fractions)."""
        screen = [self.to_screen(fx, fy, object_name) for fx, fy in points]
        self.page.mouse.move(*screen[0])
        self.page.mouse.down()
        for pt in screen[1:]:
            self.page.mouse.move(*pt, steps=steps)
        self.page.mouse.up()

    def drag_box(self, x1: float, y1: float, x2: float, y2: float, object_name: str | None = None,
                 expect: bool | None = None, settle_s: float = 1.5) -> InteractiveCall | None:
        """Drag a rectangle between two image points (fractions); returns the interactive call it caused."""
        before = len(self.interactive_calls)
        self.drag([(x1, y1), (x2, y2)], object_name)
        new = self.wait_interactive(before, expect=expect, settle_s=settle_s)
        return new[-1] if new else None

    def paint(self, points: list[tuple[float, float]], object_name: str | None = None,
              expect: bool | None = None) -> InteractiveCall | None:
        """One brush stroke through ``points`` (image fractions); returns the interactive call it caused, if any.

        Verified in 1.23.2: a stroke with the *smart* brush creates a NON-dynamic brush region and sends nothing
        (the code would debounce a request 1.2 s, but the committed region loses the dynamic flag).
        """
        before = len(self.interactive_calls)
        self.drag(points, object_name)
        new = self.wait_interactive(before, expect=expect, settle_s=3.0)
        return new[-1] if new else None

    # --- text prompt ---

    def _control_locator(self, control: str):
        found = self.page.evaluate(
            """(name) => { const tag = window.Htx.annotationStore.selected.names.get(name);
                           const el = tag && tag.elementRef && tag.elementRef.current;
                           if (!el) return false; el.setAttribute('data-harness-control', name); return true; }""",
            control)  # fmt: skip
        if not found:
            raise EditorError(f"control {control!r} has no rendered element")
        return self.page.locator(f"[data-harness-control={control}]")

    def type_query(self, text: str, control: str = "prompt", submit: str = "button", expect: bool | None = True,
                   settle_s: float = 3.0) -> InteractiveCall | None:
        """Type ``text`` into the whole-object TextArea ``control`` and submit it.

        Args:
            submit: ``"button"`` (the "Add" button), ``"shift+enter"``, ``"enter"`` (one-row boxes) or ``"none"``
                (leave it typed but not added; LS adds it on annotation submit).
        """
        box = self._control_locator(control)
        field_ = box.locator("[data-testid=textarea-input]").first
        field_.click()
        field_.fill(text)
        before = len(self.interactive_calls)
        if submit == "button":
            box.locator("[data-testid=textarea-add-button]").first.click()
        elif submit == "shift+enter":
            field_.press("Shift+Enter")
        elif submit == "enter":
            field_.press("Enter")
        elif submit == "none":
            return None
        new = self.wait_interactive(before, expect=expect, settle_s=settle_s)
        return new[-1] if new else None

    # --- suggestions ---

    def _click_suggestion_button(self, kind: str) -> None:
        button = self.page.locator(f"[data-testid=bottombar-{kind}-suggestions-button]")
        try:
            button.wait_for(state="visible", timeout=5000)
        except Exception:  # noqa: BLE001
            raise EditorError(f"no {kind}-all button: it only shows while suggestions are pending "
                              f"(Auto-Accept off); state={self.state()}") from None
        button.click()

    def accept_all(self, settle_s: float = 1.5) -> list[InteractiveCall]:
        """Bottom-bar ✓ (``bottombar-accept-suggestions-button``); returns any interactive calls it caused."""
        before = len(self.interactive_calls)
        self._click_suggestion_button("accept")
        return self.wait_interactive(before, expect=None, settle_s=settle_s)

    def reject_all(self, settle_s: float = 1.5) -> list[InteractiveCall]:
        """Bottom-bar ✗ (``bottombar-reject-suggestions-button``); returns any interactive calls it caused."""
        before = len(self.interactive_calls)
        self._click_suggestion_button("reject")
        return self.wait_interactive(before, expect=None, settle_s=settle_s)
