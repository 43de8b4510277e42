"""Errors the backend turns into HTTP 4xx answers with a JSON message that says what to fix."""

from __future__ import annotations


class BackendError(Exception):
    """Base class: ``status`` is the HTTP status the API answers with; ``field`` names the part of the
    request at fault (``tasks[0].id``, ``params.context.result[3].value.x``), when one is."""

    status = 400

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class BadRequest(BackendError):
    """The request body is malformed (missing keys, wrong types)."""

    status = 400


class Unauthorized(BackendError):
    status = 401


class PayloadTooLarge(BackendError):
    """The request body is over ``UNIPIXEL_MAX_REQUEST_MB``."""

    status = 413


class UnsupportedLabelConfig(BackendError):
    """The project's labeling config has no tags this backend can fill."""

    status = 422


class PromptError(BackendError):
    """A region in the interactive context cannot be turned into a prompt."""

    status = 422


class MediaError(BackendError):
    """The task's media cannot be fetched, is not allowed, is too large, or does not decode."""

    status = 422


class MediaUnavailable(MediaError):
    """The media server could not be reached or refused the download."""

    status = 424


class LabelStudioError(BackendError):
    """Label Studio refused or could not take a call of ours (token refresh, storing a prediction)."""

    status = 424


class Busy(BackendError):
    """Too many requests are waiting for the model."""

    status = 503

    def __init__(self, message: str, retry_after_s: int) -> None:
        super().__init__(message)
        self.retry_after_s = retry_after_s


class QueueUnavailable(BackendError):
    """Redis (the training queue) cannot be reached."""

    status = 503


class NothingToTrain(BackendError):
    """*Start Training* on a project with nothing to train. Label Studio keeps an ML backend's failed training call
    only as ``str(requests.HTTPError)``, which carries the HTTP reason phrase and drops the body: so the reason is
    also sent as the status line's phrase (ASCII, short). (Label Studio 1.23 then resets the model's state on the
    next health check, so its UI does not show it; the backend log does.)"""

    status = 422

    @property
    def reason_phrase(self) -> str:
        text = str(self).encode("ascii", "replace").decode().replace("\r", " ").replace("\n", " ")
        return text[:200]
