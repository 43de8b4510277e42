"""Talking back to Label Studio: auth headers (PAT or legacy token), downloads, predictions.

Label Studio 1.23 issues Personal Access Tokens (JWT *refresh* tokens): they are exchanged at
``POST /api/token/refresh`` for a short-lived access token sent as ``Bearer``. Legacy tokens
(40 hex characters) go as ``Token``. We tell them apart by shape, as label-studio-sdk does.
"""

from __future__ import annotations

import base64
import json
import logging
import re
import threading
import time

import requests

from backend.errors import LabelStudioError

logger = logging.getLogger(__name__)
TIMEOUT_S = (5, 60)  # (connect, read)


def describe_request_error(err: requests.RequestException) -> str:
    """``ExceptionClass: message`` without URL queries (presigned URLs carry signatures) and at most
    300 characters; header values are never quoted (requests quotes a malformed one, token included)."""
    if isinstance(err, requests.exceptions.InvalidHeader):
        return f"{err.__class__.__name__}: a header value is malformed (check LABEL_STUDIO_API_KEY for stray characters)"
    text = re.sub(r"\?[^\s'\")]*", "?...", str(err))
    return f"{err.__class__.__name__}: {text[:300]}"


def is_jwt(token: str) -> bool:
    """Personal access tokens are JWTs: three base64 segments separated by dots."""
    return token.count(".") == 2 and token.startswith("eyJ")


def _jwt_expiry(token: str) -> float:
    try:
        payload = token.split(".")[1]
        data = json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
        return float(data.get("exp", 0))
    except (ValueError, IndexError):
        return 0.0


class LabelStudioClient:
    """Authenticated HTTP access to one Label Studio instance.

    Args:
        url: ``LABEL_STUDIO_URL`` (scheme + host + port, no trailing slash).
        api_key: a personal access token or a legacy token.
    """

    def __init__(self, url: str, api_key: str, session: requests.Session | None = None) -> None:
        self.url, self.api_key = url.rstrip("/"), api_key
        self.http = session or requests.Session()
        self._access: str | None = None
        self._access_exp = 0.0
        self._lock = threading.Lock()

    def secrets(self) -> tuple[str, ...]:
        """The token and the access token refreshed from it (for :mod:`backend.redaction`)."""
        return tuple(s for s in (self.api_key, self._access) if s)

    def _scrub(self, text: str) -> str:
        for secret in self.secrets():
            text = text.replace(secret, "***")
        return text

    def headers(self) -> dict[str, str]:
        """The ``Authorization`` header (refreshing a PAT's access token when it is about to expire)."""
        if not self.api_key:
            return {}
        if not is_jwt(self.api_key):
            return {"Authorization": f"Token {self.api_key}"}
        with self._lock:
            if self._access is None or time.time() > self._access_exp - 30:
                self._refresh()
            return {"Authorization": f"Bearer {self._access}"}

    def _refresh(self) -> None:
        try:
            reply = self.http.post(f"{self.url}/api/token/refresh", json={"refresh": self.api_key}, timeout=TIMEOUT_S)
        except requests.RequestException as err:
            raise LabelStudioError(f"cannot reach Label Studio at {self.url} to refresh the access token: "
                                   f"{describe_request_error(err)}; check LABEL_STUDIO_URL") from None
        if reply.status_code != 200:
            raise LabelStudioError(f"Label Studio refused the personal access token ({reply.status_code}); "
                                   "create a new one in Account & Settings and set LABEL_STUDIO_API_KEY")
        try:
            access = reply.json()["access"]
        except (ValueError, KeyError, TypeError):
            raise LabelStudioError(f"Label Studio at {self.url} answered the token refresh without an access token; "
                                   "check that LABEL_STUDIO_URL points at Label Studio") from None
        if not isinstance(access, str) or not access:
            raise LabelStudioError(f"Label Studio at {self.url} sent an unusable access token; check LABEL_STUDIO_URL")
        self._access = access
        self._access_exp = _jwt_expiry(self._access) or time.time() + 240

    def get(self, path_or_url: str, **kwargs) -> requests.Response:
        """GET a Label Studio path (``/data/upload/...``) or absolute URL on this host, with auth."""
        url = path_or_url if path_or_url.startswith("http") else self.url + path_or_url
        return self.http.get(url, headers=self.headers(), timeout=TIMEOUT_S, **kwargs)

    def presign_url(self, cloud_uri: str, task_id: int) -> str:
        """Where LS serves a cloud-storage object (``s3://``, ``gs://``, ``azure-blob://``) of a task."""
        encoded = base64.urlsafe_b64encode(cloud_uri.encode()).decode()
        return f"{self.url}/tasks/{task_id}/presign/?fileuri={encoded}"

    def post_prediction(self, task_id: int, prediction: dict) -> int:
        """Store ``prediction`` ({result, score, model_version}) on a task; returns the prediction id."""
        body = {"task": task_id, **prediction}
        try:
            reply = self.http.post(f"{self.url}/api/predictions/", json=body, headers=self.headers(),
                                   timeout=TIMEOUT_S)
        except requests.RequestException as err:
            raise LabelStudioError(f"cannot reach Label Studio at {self.url} to store the prediction for task "
                                   f"{task_id}: {describe_request_error(err)}; check LABEL_STUDIO_URL") from None
        if reply.status_code >= 300:
            raise LabelStudioError(f"Label Studio refused the prediction for task {task_id}: "
                                   f"{reply.status_code} {self._scrub(reply.text[:300])}")
        try:
            return int(reply.json().get("id", 0))
        except (ValueError, TypeError, AttributeError):
            return 0
