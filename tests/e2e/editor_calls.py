"""What the editor page sent and got back: the ``/api/`` calls the harness (:mod:`tests.e2e.editor`) logs, and its
error type."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

INTERACTIVE_RE = re.compile(r"/api/ml/(\d+)/interactive-annotating/?(?:\?|$)")


class EditorError(RuntimeError):
    """The editor did not reach the expected state (the message says which and what it saw)."""


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
