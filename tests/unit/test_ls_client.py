"""Label Studio auth: personal access tokens (JWT refresh -> Bearer) vs legacy tokens (Token)."""

from __future__ import annotations

import base64
import json

from backend.ls_client import LabelStudioClient, is_jwt


def _jwt(payload: dict) -> str:
    body = base64.urlsafe_b64encode(json.dumps(payload).encode()).decode().rstrip("=")
    return f"eyJhbGciOiJIUzI1NiJ9.{body}.c2ln"


def test_is_jwt_tells_personal_access_tokens_from_legacy_tokens():
    assert is_jwt(_jwt({"token_type": "refresh"}))
    assert not is_jwt("0123456789abcdef0123456789abcdef01234567")


def test_legacy_token_goes_as_token_header_without_refresh():
    client = LabelStudioClient("http://ls:8080/", "0123456789abcdef0123456789abcdef01234567")
    assert client.url == "http://ls:8080"
    assert client.headers() == {"Authorization": "Token 0123456789abcdef0123456789abcdef01234567"}


def test_no_key_sends_no_header():
    assert LabelStudioClient("http://ls:8080", "").headers() == {}


def test_presign_url_encodes_the_cloud_uri_for_the_task():
    url = LabelStudioClient("http://ls:8080", "k").presign_url("s3://bucket/a b.mp4", 12)
    encoded = url.split("fileuri=")[1]
    assert url.startswith("http://ls:8080/tasks/12/presign/?fileuri=")
    assert base64.urlsafe_b64decode(encoded).decode() == "s3://bucket/a b.mp4"
