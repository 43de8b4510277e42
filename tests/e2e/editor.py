"""Drive the real Label Studio 1.23.2 editor (headless Debian Chromium, Python Playwright) and record what it sends.

Plain Python (no pytest): usable from tests and from scripts. The browser is the system ``/usr/bin/chromium``
(``scripts/install_services.sh``); nothing is downloaded at run time (``playwright install`` is never run).

Every hook below was read from the editor source shipped in the label-studio 1.23.2 wheel (rebuild it from
``web/dist/apps/labelstudio/*.js.map``, see the protocol doc Appendix B) and checked in the browser; the verified
facts are in ``tests/e2e/EDITOR_NOTES.md``. UI actions go through the UI (clicks, hotkeys, mouse on the canvas);
the mobx store (``window.Htx``, ``window.ToolManager``) is used to *check* the outcome, to read regions, and for
the few things that have no stable UI hook (seeking a video frame).

The :class:`Editor` is split by concern: its lifecycle, request log, waits, inspection and saving here; its actions
(toggles, tools, labels, clicks, strokes, queries, suggestions) in ``editor_actions.py``; the pager, the video and
region selection in ``editor_views.py``; the logged calls in ``editor_calls.py``; the page's JavaScript in
``editor_js.py``.

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
import time
import urllib.request
from pathlib import Path
from typing import Any

from tests.e2e.editor_actions import SMART_TOOLS, EditorActions
from tests.e2e.editor_browser import CHROMIUM, SharedBrowser, browser_available
from tests.e2e.editor_calls import INTERACTIVE_RE, ApiCall, EditorError, InteractiveCall
from tests.e2e.editor_js import JS_READY, JS_REGIONS, JS_STATE
from tests.e2e.editor_views import EditorViews

__all__ = ["CHROMIUM", "SMART_TOOLS", "ApiCall", "Editor", "EditorError", "InteractiveCall", "SharedBrowser",
           "browser_available"]


class Editor(EditorActions, EditorViews):
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
        self._own_browser: SharedBrowser | None = None
        self.context = self.page = None
        self.task_id: int | None = None

    # --- lifecycle ---

    def __enter__(self) -> Editor:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def start(self, shared: SharedBrowser | None = None) -> Editor:
        """Launch Chromium and log in; or, given a ``shared`` browser, open a context of its own in that one, logged in
        with the cookies of the shared browser's first login to this Label Studio (no launch, no login form: about 4 s
        less a test). Raises EditorError (with the install hint) when the browser is missing."""
        missing = browser_available()
        if missing:
            raise EditorError(missing)
        self.screenshots_dir.mkdir(parents=True, exist_ok=True)
        if shared is None:  # a browser of its own, closed with it
            shared = self._own_browser = SharedBrowser(self.headless)
        login_key = (self.ls_url, self.username)
        state = shared.login_states.get(login_key)
        self.context = shared.browser().new_context(viewport={"width": self.viewport[0], "height": self.viewport[1]},
                                                    storage_state=state)
        self.page = self.context.new_page()
        self.page.set_default_timeout(self.timeout_s * 1000)
        self.page.on("request", self._on_request)
        self.page.on("requestfinished", self._on_finished)
        self.page.on("requestfailed", self._on_failed)
        self.page.on("console", lambda m: m.type == "error" and self.console_errors.append(m.text))
        self.page.on("pageerror", lambda e: self.console_errors.append(f"pageerror: {e}"))
        if state is None:
            self.login()
            shared.login_states[login_key] = self.context.storage_state()
        return self

    def close(self) -> None:
        """Close this editor's context, and the browser and Playwright when it launched them (idempotent)."""
        try:
            if self.context:
                self.context.close()
        except Exception:  # noqa: BLE001, S110  (already gone)
            pass
        if self._own_browser is not None:
            self._own_browser.close()
        self._own_browser = self.page = self.context = None

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
        self.page.wait_for_function(JS_READY, arg=None, timeout=(timeout_s or self.timeout_s) * 1000)
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
        self.page.wait_for_function(JS_READY, arg=None, timeout=self.timeout_s * 1000)
        self.pump(0.5)

    # --- inspection ---

    def state(self) -> dict:
        """Editor flags: toggles, selected tools and labels, pending suggestions, annotation id/pk."""
        try:
            return self.page.evaluate(JS_STATE)
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
        return self.page.evaluate(JS_REGIONS)

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
