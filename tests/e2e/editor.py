"""Drive the real Label Studio 1.23.2 editor (headless Debian Chromium, Python Playwright) and record what it sends.

Plain Python (no pytest): usable from tests and from scripts. The browser is the system ``/usr/bin/chromium``
(``scripts/install_services.sh``); nothing is downloaded at run time (``playwright install`` is never run).

Every hook below was read from the editor source shipped in the label-studio 1.23.2 wheel (rebuild it from
``web/dist/apps/labelstudio/*.js.map``, see the protocol doc Appendix B) and checked in the browser; the verified
facts are in ``tests/e2e/EDITOR_NOTES.md``. UI actions go through the UI (clicks, hotkeys, mouse on the canvas);
the mobx store (``window.Htx``, ``window.ToolManager``) is used to *check* the outcome, to read regions, and for
the few things that have no stable UI hook (seeking a video frame).

Example::

    with Editor(ls.url, ls.username, ls.password, tmp / "shots", token=ls.token) as ed:
        ed.open_task(project_id, task_id)
        ed.set_auto_annotation(True)
        ed.set_auto_accept(True)
        ed.select_smart_tool("keypoint")
        ed.select_label("click", "Object")
        call = ed.click(0.25, 0.3)          # fractions of the natural image size; waits for the ML round trip
        print(call.context_result, call.response)
        ed.submit()
        print(ed.regions(), ed.saved_annotations(task_id))
"""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Any

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]  # fmt: skip
INSTALL_HINT = "run `bash scripts/install_services.sh` (apt chromium + pip playwright into .venv)"
INTERACTIVE_RE = re.compile(r"/api/ml/(\d+)/interactive-annotating/?(?:\?|$)")

# Tool names (the toolbar buttons' aria-label = kebab-case of the mobx tool type) per smart tool kind.
SMART_TOOLS = {
    "keypoint": ("KeyPointTool", "key-point-tool"),
    "rectangle": ("RectangleTool", "rectangle-tool"),
    "rectangle3point": ("Rectangle3PointTool", "rectangle-3-point-tool"),
    "brush": ("BrushTool", "brush-tool"),
}


class EditorError(RuntimeError):
    """The editor did not reach the expected state (the message says which and what it saw)."""


def browser_available() -> str | None:
    """Return None when Chromium and Playwright are installed, else a message with the install hint."""
    if not Path(CHROMIUM).is_file() or shutil.which(CHROMIUM) is None:
        return f"{CHROMIUM} is missing: {INSTALL_HINT}"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError as err:
        return f"Python playwright is not importable ({err}): {INSTALL_HINT}"
    return None


@dataclass
class ApiCall:
    """One request the page made to ``/api/...`` (method, path, JSON sent, status and JSON returned)."""

    method: str
    url: str
    body: Any
    sent_at: float
    status: int | None = None
    response: Any = None
    done_at: float | None = None
    failure: str | None = None

    @property
    def path(self) -> str:
        return "/" + self.url.split("://", 1)[-1].split("/", 1)[-1]

    @property
    def done(self) -> bool:
        return self.done_at is not None

    @property
    def duration_s(self) -> float | None:
        return None if self.done_at is None else self.done_at - self.sent_at


@dataclass
class InteractiveCall(ApiCall):
    """A ``POST /api/ml/<id>/interactive-annotating`` made by the editor page.

    ``body`` is exactly what the page sent (``{"task": id, "context": {"result": [...]}}``); ``response`` is what
    LS answered (``{"data": {"result": [...], ...}}``, or HTTP 200 ``{"errors": [...]}`` when our backend failed).
    """

    ml_id: int = 0

    @property
    def context(self) -> dict:
        return (self.body or {}).get("context") or {}

    @property
    def context_result(self) -> list[dict]:
        return self.context.get("result") or []

    @property
    def errors(self) -> list | None:
        return self.response.get("errors") if isinstance(self.response, dict) else None

    @property
    def returned_result(self) -> list[dict]:
        data = self.response.get("data") if isinstance(self.response, dict) else None
        return (data or {}).get("result") or []

    def summary(self) -> dict:
        """A compact view for logs: what was sent (types, ids) and what came back."""
        return {"sent": [(r.get("type"), r.get("id"), r.get("is_positive"), r.get("item_index"))
                         for r in self.context_result],
                "status": self.status, "errors": self.errors,
                "returned": [(r.get("type"), r.get("id"), r.get("item_index")) for r in self.returned_result],
                "duration_s": None if self.duration_s is None else round(self.duration_s, 2)}


# --- JavaScript run in the page (store paths from the 1.23.2 editor source) ---

_JS_READY = """() => { try {
  const s = window.Htx;
  if (!s || !s.annotationStore || !s.annotationStore.selected || !window.ToolManager) return false;
  const ann = s.annotationStore.selected;
  for (const [name, tag] of s.annotationStore.selected.names) {
    if (tag.type === 'image' && !tag.imageIsLoaded) return false;
    if (tag.type === 'video' && !(tag.ref && tag.ref.current && tag.length > 0)) return false;
  }
  return !!ann.objects && ann.objects.length > 0;
} catch (e) { return false; } }"""

_JS_REGIONS = """() => {
  const ann = window.Htx.annotationStore.selected;
  const one = (r, suggestion) => {
    const results = r.results || [];
    const controls = results.map(x => x.from_name && (x.from_name.name || x.from_name));
    let value = null;
    try { value = r.serialize ? (r.serialize() || {}).value || null : null; } catch (e) { value = null; }
    if (value && Array.isArray(value.rle)) { value = {...value, rle_length: value.rle.length}; delete value.rle; }
    return {
      id: r.cleanId || r.id, key: r.id, type: r.type, item_index: r.item_index ?? null,
      object: r.object ? (r.object.name || r.object) : null, controls,
      label: r.labelName ?? null, origin: r.origin ?? null, score: r.score ?? null,
      dynamic: !!r.dynamic, negative: r.negative ?? null, from_suggestion: !!r.fromSuggestion,
      suggestion, accepted: !suggestion && !!r.fromSuggestion, hidden: !!r.hidden, selected: !!r.selected,
      value,
    };
  };
  return [...ann.regionStore.regions.map(r => one(r, false)),
          ...Array.from(ann.suggestions.values()).map(r => one(r, true))];
}"""

_JS_STATE = """() => {
  const s = window.Htx; const ann = s.annotationStore.selected;
  const tools = window.ToolManager.allInstances().flatMap(m => m.allTools().filter(t => t.selected)
     .map(t => ({manager: m.name, tool: t.toolName, dynamic: !!t.dynamic})));
  const labels = [];
  for (const [name, tag] of s.annotationStore.selected.names) {
    if (tag.children && tag.type && tag.type.endsWith('labels'))
      for (const l of tag.children) if (l.selected) labels.push([name, l.value]);
  }
  return {autoAnnotation: s.autoAnnotation, autoAccept: s.autoAcceptSuggestions,
          continuousLabeling: s.settings.continuousLabeling, awaitingSuggestions: !!s.awaitingSuggestions,
          annotation: {id: ann.id, pk: ann.pk ?? null}, suggestions: ann.suggestions.size,
          regions: ann.regionStore.regions.length, tools, labels};
}"""


class Editor:
    """A headless Chromium logged in to Label Studio, with a log of the page's API calls.

    Args:
        ls_url: Label Studio base URL (``LabelStudioServer.url``).
        username, password: the login (``LabelStudioServer.username/password``).
        screenshots_dir: where :meth:`screenshot` writes PNGs (created).
        token: legacy API token for :meth:`saved_annotations` (``LabelStudioServer.token``); optional.
        viewport: browser window size; tall enough that the prompt TextArea and the bottom bar show.
        timeout_s: default wait for editor states and ML round trips.

    Attributes:
        api_calls: every ``/api/`` request the page made (:class:`ApiCall`), in order.
        interactive_calls: the ``interactive-annotating`` subset (:class:`InteractiveCall`).
        timings: seconds measured by :meth:`login` / :meth:`open_task` (``login_s``, ``editor_ready_s``).
        console_errors: page console errors and uncaught exceptions.
    """

    def __init__(self, ls_url: str, username: str, password: str, screenshots_dir: Path | str,
                 token: str | None = None, viewport: tuple[int, int] = (1400, 1100), timeout_s: float = 90.0,
                 headless: bool = True) -> None:  # fmt: skip
        self.ls_url = ls_url.rstrip("/")
        self.username, self.password, self.token = username, password, token
        self.screenshots_dir = Path(screenshots_dir)
        self.viewport, self.timeout_s, self.headless = viewport, timeout_s, headless
        self.api_calls: list[ApiCall] = []
        self.interactive_calls: list[InteractiveCall] = []
        self.timings: dict[str, float] = {}
        self.console_errors: list[str] = []
        self._pending: dict[Any, ApiCall] = {}
        self._shots = 0
        self._pw = self._browser = self.context = self.page = None
        self.task_id: int | None = None

    # --- lifecycle ---

    def __enter__(self) -> Editor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self) -> Editor:
        """Launch Chromium and log in. Raises EditorError (with the install hint) when the browser is missing."""
        missing = browser_available()
        if missing:
            raise EditorError(missing)
        from playwright.sync_api import sync_playwright

        self.screenshots_dir.mkdir(parents=True, exist_ok=True)
        self._pw = sync_playwright().start()
        self._browser = self._pw.chromium.launch(executable_path=CHROMIUM, headless=self.headless, args=CHROMIUM_ARGS)
        self.context = self._browser.new_context(viewport={"width": self.viewport[0], "height": self.viewport[1]})
        self.page = self.context.new_page()
        self.page.set_default_timeout(self.timeout_s * 1000)
        self.page.on("request", self._on_request)
        self.page.on("requestfinished", self._on_finished)
        self.page.on("requestfailed", self._on_failed)
        self.page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        self.page.on("pageerror", lambda e: self.console_errors.append(f"pageerror: {e}"))
        self.login()
        return self

    def close(self) -> None:
        """Close the browser and stop Playwright (idempotent)."""
        for stop in (self._browser and self._browser.close, self._pw and self._pw.stop):
            try:
                if stop:
                    stop()
            except Exception:  # noqa: BLE001, S110  (already gone)
                pass
        self._browser = self._pw = self.page = self.context = None

    def login(self) -> None:
        """Log in through LS's form (``input[name=email]``, ``input[name=password]``, ``button[type=submit]``)."""
        t0 = time.monotonic()
        self.page.goto(self.ls_url + "/user/login/")
        self.page.fill("input[name=email]", self.username)
        self.page.fill("input[name=password]", self.password)
        with self.page.expect_navigation():
            self.page.click("button[type=submit]")
        if "/user/login" in self.page.url:
            raise EditorError(f"login as {self.username} failed; still on {self.page.url}")
        self.timings["login_s"] = time.monotonic() - t0

    # --- request log ---

    def _on_request(self, request: Any) -> None:
        if not request.url.startswith(self.ls_url + "/api/"):  # LS only (not e.g. the editor's Sentry envelopes)
            return
        try:
            body = request.post_data_json
        except Exception:  # noqa: BLE001  (not JSON)
            body = request.post_data
        match = INTERACTIVE_RE.search(request.url)
        if match and request.method == "POST":
            call: ApiCall = InteractiveCall(request.method, request.url, body, time.monotonic(), ml_id=int(match[1]))
            self.interactive_calls.append(call)  # type: ignore[arg-type]
        else:
            call = ApiCall(request.method, request.url, body, time.monotonic())
        self.api_calls.append(call)
        self._pending[request] = call

    def _on_finished(self, request: Any) -> None:
        call = self._pending.pop(request, None)
        if call is None:
            return
        try:
            response = request.response()
            call.status = response.status if response else None
            if response is not None and call.method != "GET":  # GET bodies (task lists, media) are not kept
                try:
                    call.response = response.json()
                except Exception:  # noqa: BLE001  (empty / not JSON)
                    call.response = response.text()
        finally:
            call.done_at = time.monotonic()

    def _on_failed(self, request: Any) -> None:
        call = self._pending.pop(request, None)
        if call is not None:
            call.failure = request.failure or "failed"
            call.done_at = time.monotonic()

    def calls(self, method: str | None = None, path_re: str | None = None) -> list[ApiCall]:
        """The logged ``/api/`` calls, optionally filtered by method and a regex on the path."""
        return [c for c in self.api_calls
                if (method is None or c.method == method) and (path_re is None or re.search(path_re, c.path))]

    def pump(self, seconds: float = 0.1) -> None:
        """Let the page run (and Playwright deliver its events) for ``seconds``."""
        self.page.wait_for_timeout(seconds * 1000)

    def wait_until(self, check, what: str, timeout_s: float | None = None, step_s: float = 0.1) -> Any:
        """Pump events until ``check()`` is truthy; return its value or raise EditorError naming ``what``."""
        deadline = time.monotonic() + (timeout_s or self.timeout_s)
        while True:
            value = check()
            if value:
                return value
            if time.monotonic() > deadline:
                raise EditorError(f"timed out after {timeout_s or self.timeout_s:.0f} s waiting for {what}; "
                                  f"state={self.state()}")
            self.pump(step_s)

    def wait_interactive(self, before: int, expect: bool | None = None, settle_s: float = 1.5,
                         timeout_s: float | None = None) -> list[InteractiveCall]:
        """Wait for the interactive calls made after index ``before`` to finish; return them.

        Args:
            before: ``len(self.interactive_calls)`` taken before the action.
            expect: True: at least one call must come (EditorError otherwise); False: just wait ``settle_s`` and
                return whatever came; None: wait up to ``settle_s`` for one, then for it to finish.
            settle_s: how long a call may take to appear (the brush debounces 1.2 s).
        """
        if expect is True:
            self.wait_until(lambda: len(self.interactive_calls) > before, "an interactive-annotating request",
                            timeout_s=max(settle_s, 10.0))
        else:
            deadline = time.monotonic() + settle_s
            while time.monotonic() < deadline and (expect is False or len(self.interactive_calls) <= before):
                self.pump(0.1)
        new = self.interactive_calls[before:]
        if new:
            self.wait_until(lambda: all(c.done for c in self.interactive_calls[before:])
                            and not self.page.evaluate("() => !!window.Htx.awaitingSuggestions"),
                            "the interactive round trip", timeout_s=timeout_s)
            self.pump(0.3)  # let mobx apply the suggestions (and auto-accept) before callers read the store
        return self.interactive_calls[before:]

    # --- navigation ---

    def open_task(self, project_id: int, task_id: int, timeout_s: float | None = None) -> float:
        """Open ``/projects/<P>/data?task=<T>`` and wait until the editor store is populated and media loaded.

        Returns:
            Seconds from navigation to ready (also in ``timings["editor_ready_s"]``).
        """
        t0 = time.monotonic()
        self.page.goto(f"{self.ls_url}/projects/{project_id}/data?task={task_id}")
        self.page.wait_for_function(_JS_READY, arg=None, timeout=(timeout_s or self.timeout_s) * 1000)
        got = self.page.evaluate("() => window.Htx.task && window.Htx.task.id")
        if got is not None and int(got) != int(task_id):
            raise EditorError(f"editor opened task {got}, expected {task_id}")
        self.task_id = int(task_id)
        self.timings["editor_ready_s"] = time.monotonic() - t0
        self.pump(0.5)
        return self.timings["editor_ready_s"]

    def reload(self) -> None:
        """Reload the current page and wait for the editor (needed after toggling 'Interactive preannotations')."""
        self.page.reload()
        self.page.wait_for_function(_JS_READY, arg=None, timeout=self.timeout_s * 1000)
        self.pump(0.5)

    # --- inspection ---

    def state(self) -> dict:
        """Editor flags: toggles, selected tools and labels, pending suggestions, annotation id/pk."""
        try:
            return self.page.evaluate(_JS_STATE)
        except Exception as err:  # noqa: BLE001  (page not ready)
            return {"error": str(err)}

    def regions(self) -> list[dict]:
        """Regions of the selected annotation, then pending suggestions, read from the mobx store.

        Each dict: ``id`` (cleanId, the result id LS saves), ``key`` (store key, ``<id>#<annotation>`` for
        suggestions), ``type`` (``keypointregion``, ``rectangleregion``, ``brushregion``, ``videorectangleregion``,
        ...), ``item_index``, ``object``, ``controls`` (from_names), ``label``, ``origin``, ``score``, ``dynamic``
        (a smart click/box), ``negative`` (Alt-click), ``suggestion`` (pending), ``accepted`` (came from a
        suggestion), ``value`` (the serialized value, e.g. keypoint x/y in percent).
        """
        return self.page.evaluate(_JS_REGIONS)

    def serialized(self) -> list[dict]:
        """``annotation.serializeAnnotation()``: the result list the editor would save right now."""
        return self.page.evaluate("() => window.Htx.annotationStore.selected.serializeAnnotation()")

    def screenshot(self, name: str) -> Path:
        """Save a full-page PNG ``<NN>-<name>.png`` under ``screenshots_dir`` and return its path."""
        self._shots += 1
        path = self.screenshots_dir / f"{self._shots:02d}-{re.sub(r'[^A-Za-z0-9_.-]+', '_', name)}.png"
        self.page.screenshot(path=str(path), full_page=True)
        return path

    def saved_annotations(self, task_id: int | None = None) -> list[dict]:
        """``GET /api/tasks/<id>/annotations/`` with the legacy token (what LS stored)."""
        if not self.token:
            raise EditorError("saved_annotations needs token= (LabelStudioServer.token)")
        task_id = task_id or self.task_id
        req = urllib.request.Request(f"{self.ls_url}/api/tasks/{task_id}/annotations/",
                                     headers={"Authorization": f"Token {self.token}", "Accept": "application/json"})
        with urllib.request.urlopen(req, timeout=30) as resp:
            return json.loads(resp.read())

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

    # --- saving ---

    def _save(self, testid: str, method: str, path_re: str) -> ApiCall:
        before = len(self.api_calls)
        self.page.click(f"[data-testid={testid}]")
        call = self.wait_until(lambda: next((c for c in self.api_calls[before:]
                                             if c.method == method and re.search(path_re, c.path) and c.done), None),
                               f"{method} {path_re} after {testid}")
        if call.status is None or call.status >= 400:
            raise EditorError(f"{testid}: {call.method} {call.path} -> {call.status} {call.response}")
        self.pump(1.0)
        return call

    def submit(self) -> ApiCall:
        """Bottom-bar Submit (``bottombar-submit-button``): waits for ``POST /api/tasks/<id>/annotations/``."""
        return self._save("bottombar-submit-button", "POST", r"/api/tasks/\d+/annotations")

    def update(self) -> ApiCall:
        """Bottom-bar Update (``bottombar-update-button``): waits for ``PATCH /api/annotations/<id>/``."""
        return self._save("bottombar-update-button", "PATCH", r"/api/annotations/\d+")
