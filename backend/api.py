"""The Label Studio ML protocol on Flask: routes, auth, JSON errors (never a traceback).

Routes: ``GET /`` and ``/health`` (instant, no auth, never loads the model), ``POST /setup``,
``POST /predict``, ``POST /webhook``, ``GET /versions``, ``GET /metrics``. Every route but the
health checks needs basic auth when ``BASIC_AUTH_USER``/``BASIC_AUTH_PASS`` are set; ``/webhook``
also accepts the shared secret (``X-UniPixel-Secret`` header or ``?secret=``), because Label
Studio's auto-created webhook sends no basic auth.
"""

from __future__ import annotations

import hmac
import logging
import uuid

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException

from backend.engine import Engine
from backend.errors import BackendError, BadRequest, Busy, Unauthorized
from backend.model import UniPixelBackend
from backend.settings import Settings
from unipixel_model.errors import UniPixelInputError

logger = logging.getLogger(__name__)
OPEN_ROUTES = ("/", "/health")


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> Flask:
    """Build the app. ``engine`` defaults to a new one (one model per process)."""
    settings = settings or Settings.from_env()
    engine = engine or Engine(settings)
    app = Flask("unipixel_backend")
    app.config["engine"] = engine

    def backend(project: object = None, label_config: str | None = None) -> UniPixelBackend:
        return UniPixelBackend(engine, _project_id(project), label_config)

    @app.before_request
    def _auth():
        if request.path in OPEN_ROUTES or not settings.basic_auth_user:
            return None
        auth = request.authorization
        if auth and _same(auth.username, settings.basic_auth_user) and _same(auth.password, settings.basic_auth_pass):
            return None
        if request.path == "/webhook" and settings.webhook_secret:
            given = request.headers.get("X-UniPixel-Secret") or request.args.get("secret") or ""
            if _same(given, settings.webhook_secret):
                return None
        raise Unauthorized("basic auth required: set the same user and password in Label Studio's model settings"
                           + (" (webhooks: X-UniPixel-Secret header)" if request.path == "/webhook" else ""))

    @app.get("/")
    @app.get("/health")
    def health():
        return jsonify(status="UP", model_class="UniPixelBackend", model_loaded=engine.loaded,
                       model_version=engine.model_version())

    @app.post("/setup")
    def setup():
        body = _json()
        model = backend(body.get("project"), body.get("schema"))
        return jsonify(model_version=model.model_version)

    @app.post("/predict")
    def predict():
        body = _json()
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise BadRequest("'params' must be an object")
        model = backend(body.get("project"), body.get("label_config"))
        results = model.predict(body.get("tasks"), context=params.get("context"))
        return jsonify(results=results, model_version=model.model_version)

    @app.post("/webhook")
    def webhook():
        body = _json()
        action = body.get("action")
        if not isinstance(action, str):
            raise BadRequest("webhook payload has no 'action'")
        result = backend(body.get("project")).fit(action, body)
        return jsonify(status="ok", result=result), 201 if result.get("status") in ("queued", "coalesced") else 200

    @app.get("/versions")
    def versions():
        listed = engine.versions.list()
        return jsonify(versions=[v.get("version") for v in listed], details=listed,
                       current=engine.model_version())

    @app.get("/metrics")
    def metrics():
        return jsonify(sessions=len(engine.sessions), model_loaded=engine.loaded,
                       background_jobs=sum(1 for f in engine.background_jobs if not f.done()))

    _register_errors(app)
    return app


def _json() -> dict:
    body = request.get_json(silent=True)
    if not isinstance(body, dict):
        raise BadRequest("the body must be a JSON object (Content-Type: application/json)")
    return body


def _project_id(project: object) -> int | None:
    """LS sends ``"<id>.<created_at>"`` uids to /setup and /predict, and the project object to webhooks."""
    if isinstance(project, dict):
        project = project.get("id")
    try:
        return int(str(project).split(".")[0]) if project is not None else None
    except ValueError:
        return None


def _same(given: str | None, expected: str) -> bool:
    return hmac.compare_digest((given or "").encode(), expected.encode())


def _register_errors(app: Flask) -> None:
    @app.errorhandler(BackendError)
    def _backend_error(err: BackendError):
        reply = jsonify(error=str(err), errors=[str(err)], status=err.status)
        reply.status_code = err.status
        if isinstance(err, Busy):
            reply.headers["Retry-After"] = str(err.retry_after_s)
        if isinstance(err, Unauthorized):
            reply.headers["WWW-Authenticate"] = 'Basic realm="unipixel"'
        return reply

    @app.errorhandler(UniPixelInputError)
    def _model_input_error(err: UniPixelInputError):
        reply = jsonify(error=str(err), errors=[str(err)], status=422)
        reply.status_code = 422
        return reply

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        reply = jsonify(error=f"{err.name}: {err.description}", status=err.code)
        reply.status_code = err.code or 500
        return reply

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):
        incident = uuid.uuid4().hex[:12]
        logger.exception("unexpected error (incident %s)", incident)
        reply = jsonify(error=f"internal error ({err.__class__.__name__}); see the backend log, incident {incident}",
                        status=500)
        reply.status_code = 500
        return reply
