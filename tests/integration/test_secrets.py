"""Secrets and access (issue 13, part 5): no token or password in logs or error bodies, auth on every
route but ``/`` and ``/health``, the webhook secret from Label Studio's webhook "headers" setting."""

from __future__ import annotations

import base64
import json
import logging
import re
import time

import pytest

from tests.integration.conftest import config
from tests.integration.http_stub import StubServer
from tests.integration.test_backend_predict import _click, _predict

TOKEN = "0123456789abcdef0123456789abcdef01234567"  # a legacy-shaped Label Studio token
PAT = "eyJhbGciOiJIUzI1NiJ9.eyJ0b2tlbl90eXBlIjoicmVmcmVzaCJ9.c2lnbmF0dXJlLXNlY3JldA"  # a PAT-shaped JWT
PASSWORD = "hunter2-basic-pass"
SECRET = "webhook-s3cret-value"


def _echo_auth(status: int):
    """A Label Studio that echoes the request's Authorization header in its error page (it happens)."""
    return lambda headers: (status, {"Content-Type": "text/plain"},
                            f"denied for {headers.get('Authorization')}".encode())


def _assert_hidden(caplog, *texts: str, secrets=(TOKEN, PAT, PASSWORD, SECRET)) -> None:
    for text in (caplog.text, *texts):
        for secret in secrets:
            assert secret not in text


def test_failing_media_download_keeps_the_token_out_of_logs_and_errors(make_client, media_root, caplog):
    caplog.set_level(logging.DEBUG)
    with StubServer({"/data/upload/1/a.png": _echo_auth(500)}) as ls:
        client = make_client(label_studio_url=ls.url, label_studio_api_key=TOKEN)
        reply = _predict(client, "image_segmentation", {"id": 70, "data": {"image": "/data/upload/1/a.png"}},
                         {"result": [_click(40, 45)]})
        assert reply.status_code == 424 and ls.requests[0][2]["Authorization"] == f"Token {TOKEN}"
    _assert_hidden(caplog, reply.get_data(as_text=True))


def test_refused_access_token_refresh_keeps_the_pat_hidden(make_client, caplog):
    caplog.set_level(logging.DEBUG)
    with StubServer({"/api/token/refresh": lambda h: (401, {}, f"bad refresh {PAT}".encode())}) as ls:
        client = make_client(label_studio_url=ls.url, label_studio_api_key=PAT)
        reply = _predict(client, "image_segmentation", {"id": 71, "data": {"image": "/data/upload/1/a.png"}},
                         {"result": [_click(40, 45)]})
        assert reply.status_code == 424 and "personal access token" in reply.json["error"]
    _assert_hidden(caplog, reply.get_data(as_text=True))


def test_malformed_token_header_error_does_not_quote_the_token(make_client, caplog):
    bad = TOKEN[:20] + "\n" + TOKEN[20:]  # requests refuses the header and quotes its value in the error
    with StubServer() as ls:
        client = make_client(label_studio_url=ls.url, label_studio_api_key=bad)
        reply = _predict(client, "image_segmentation", {"id": 72, "data": {"image": "/data/upload/1/a.png"}},
                         {"result": [_click(40, 45)]})
    assert reply.status_code == 424 and "LABEL_STUDIO_API_KEY" in reply.json["error"]
    _assert_hidden(caplog, reply.get_data(as_text=True), secrets=(TOKEN[:20], TOKEN[20:]))


def test_refused_background_prediction_post_is_logged_without_the_token(make_client, media_root, caplog):
    caplog.set_level(logging.DEBUG)
    with StubServer({"/api/predictions/": _echo_auth(400)}) as ls:
        client = make_client(label_studio_url=ls.url, label_studio_api_key=TOKEN, batch_budget_s=1e-9,
                             describe_objects=False)
        body = {"tasks": [{"id": 73, "data": {"image": str(media_root / "square.png"), "query": "the square"}}],
                "label_config": config("image_segmentation"), "project": "3.1"}
        reply = client.post("/predict", json=body)
        assert reply.status_code == 200
        for future in list(client.engine.background_jobs):
            future.result(timeout=120)  # the refusal is logged (one warning line), not raised
        deadline = time.monotonic() + 10
        while not any(path == "/api/predictions/" for _, path, _ in ls.requests) and time.monotonic() < deadline:
            time.sleep(0.05)
    assert "refused the prediction for task 73" in caplog.text and "denied for Token ***" in caplog.text
    _assert_hidden(caplog, reply.get_data(as_text=True))


def test_any_log_line_carrying_a_secret_is_masked(make_client, caplog):
    client = make_client(label_studio_url="http://127.0.0.1:9", label_studio_api_key=TOKEN, basic_auth_user="ls",
                basic_auth_pass=PASSWORD, webhook_secret=SECRET)
    caplog.set_level(logging.DEBUG)
    logging.getLogger("urllib3.connectionpool").debug("GET /x?secret=%s Authorization: Token %s", SECRET, TOKEN)
    try:
        raise RuntimeError(f"password {PASSWORD} rejected")
    except RuntimeError:
        logging.getLogger("somewhere").exception("failed")
    assert caplog.text.count("***") >= 3 and client.application.config["redactor"].secrets()
    _assert_hidden(caplog)


def test_settings_errors_do_not_echo_secret_values():
    from backend.settings import Settings, SettingsError

    with pytest.raises(SettingsError) as err:
        Settings.from_env({"LABEL_STUDIO_API_KEY": TOKEN[:10] + "\x07" + TOKEN[10:]})
    assert TOKEN[:10] not in str(err.value) and "LABEL_STUDIO_API_KEY" in str(err.value)
    assert Settings.from_env({"LABEL_STUDIO_API_KEY": TOKEN + "\n"}).label_studio_api_key == TOKEN


# ---- access --------------------------------------------------------------------------------------------
def _routes(client) -> list[tuple[str, str]]:
    return sorted((rule.rule, method) for rule in client.application.url_map.iter_rules()
                  for method in rule.methods - {"HEAD", "OPTIONS"} if rule.endpoint != "static")


def test_every_route_but_root_and_health_needs_basic_auth(make_client):
    client = make_client(basic_auth_user="ls", basic_auth_pass=PASSWORD)
    routes = _routes(client)
    assert {path for path, _ in routes} >= {"/", "/health", "/setup", "/predict", "/webhook", "/versions", "/metrics"}
    good = {"Authorization": "Basic " + base64.b64encode(f"ls:{PASSWORD}".encode()).decode()}
    wrong = {"Authorization": "Basic " + base64.b64encode(b"ls:guess-guess").decode()}
    for path, method in routes:
        bare = client.open(path, method=method, json={})
        if path in ("/", "/health"):
            assert bare.status_code == 200
            continue
        assert bare.status_code == 401, (method, path)
        assert client.open(path, method=method, json={}, headers=wrong).status_code == 401
        assert client.open(path, method=method, json={}, headers=good).status_code != 401, (method, path)
        assert "guess-guess" not in client.open(path, method=method, headers=wrong).get_data(as_text=True)
    assert client.open("/no-such-route").status_code == 401  # unknown paths are not a way around it


def test_webhook_secret_alone_guards_the_webhook_and_works_from_label_studio_headers(make_client, redis_server):
    client = make_client(webhook_secret=SECRET, redis_url=redis_server.url)
    event = {"action": "PROJECT_UPDATED", "project": {"id": 1}}
    assert client.post("/webhook", json=event).status_code == 401
    assert "X-UniPixel-Secret" in client.post("/webhook", json=event).json["error"]
    assert client.post("/webhook", json=event, headers={"X-UniPixel-Secret": "nope"}).status_code == 401
    # Label Studio's webhook "headers" setting: {"X-UniPixel-Secret": "<secret>"}, sent as given on every event
    ls_webhook_headers = {"X-UniPixel-Secret": SECRET}
    assert all(re.fullmatch(r"[a-zA-Z0-9-_]+", name) for name in ls_webhook_headers)  # LS's HEADERS_SCHEMA
    ok = client.post("/webhook", data=json.dumps(event), headers={**ls_webhook_headers,
                                                                  "Content-Type": "application/json"})
    assert ok.status_code == 200, ok.json
    assert client.post("/setup", json={"project": "1.1"}).status_code == 200  # no basic auth configured


def test_webhook_takes_basic_auth_or_the_secret_when_both_are_set(make_client, redis_server):
    client = make_client(basic_auth_user="ls", basic_auth_pass=PASSWORD, webhook_secret=SECRET,
                         redis_url=redis_server.url)
    event = {"action": "PROJECT_UPDATED", "project": {"id": 1}}
    basic = {"Authorization": "Basic " + base64.b64encode(f"ls:{PASSWORD}".encode()).decode()}
    assert client.post("/webhook", json=event, headers=basic).status_code == 200
    assert client.post("/webhook", json=event, headers={"X-UniPixel-Secret": SECRET}).status_code == 200
    assert client.post("/predict", json={}, headers={"X-UniPixel-Secret": SECRET}).status_code == 401
