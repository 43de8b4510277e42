"""The Label Studio ML protocol on Flask: routes, auth, JSON errors (never a traceback).

Routes: ``GET /`` and ``/health`` (instant, no auth, never loads the model), ``POST /setup``,
``POST /predict``, ``POST /webhook``, ``GET /versions``, ``GET /metrics``. Every route but the
health checks needs basic auth when ``BASIC_AUTH_USER``/``BASIC_AUTH_PASS`` are set; ``/webhook``
needs the shared secret when ``UNIPIXEL_WEBHOOK_SECRET`` is set (``X-UniPixel-Secret`` header, which
Label Studio's webhook "headers" setting sends, or ``?secret=``), or basic auth. Bodies are checked
by :mod:`backend.limits` before any work; error bodies never carry a configured secret.
"""

from __future__ import annotations

import hmac
import logging
import uuid

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, RequestEntityTooLarge

from backend.engine import Engine
from backend.errors import BackendError, BadRequest, Busy, NothingToTrain, PayloadTooLarge, Unauthorized
from backend.limits import RequestLimits, check_body_size, check_predict_body, parse_json_body
from backend.model import UniPixelBackend
from backend.redaction import Redactor, protect_logs
from backend.settings import Settings
from unipixel_model.errors import UniPixelInputError

logger = logging.getLogger(__name__)
OPEN_ROUTES = ("/", "/health")
RETRY_AFTER_S = 30  # a 503 without its own hint (Redis down)


def create_app(settings: Settings | None = None, engine: Engine | None = None) -> Flask:
    """Build the app. ``engine`` defaults to a new one (one model per process)."""
    settings = settings or Settings.from_env()
    engine = engine or Engine(settings)
    client = engine.ls_client
    redactor = Redactor(lambda: (*settings.secrets(), *(client.secrets() if client else ())))
    protect_logs(redactor)
    app = Flask("unipixel_backend")
    app.config.update(engine=engine, redactor=redactor, MAX_CONTENT_LENGTH=settings.max_request_bytes)
    app.before_request(_authenticator(settings))
    _register_protocol(app, engine, settings)
    _register_status(app, engine)
    _register_errors(app, redactor, settings)
    return app


def _authenticator(settings: Settings):
    """The ``before_request`` check: basic auth on every route but the health checks when it is configured, and on
    ``/webhook`` the shared secret (or basic auth) when ``UNIPIXEL_WEBHOOK_SECRET`` is set."""

    def _auth():
        hook_secret = settings.webhook_secret if request.path == "/webhook" else ""
        if request.path in OPEN_ROUTES or not (settings.basic_auth_user or hook_secret):
            return None
        auth = request.authorization
        if settings.basic_auth_user and auth and _same(auth.username, settings.basic_auth_user) \
                and _same(auth.password, settings.basic_auth_pass):
            return None
        if hook_secret and _same(request.headers.get("X-UniPixel-Secret") or request.args.get("secret"), hook_secret):
            return None
        raise Unauthorized("basic auth required: set the same user and password in Label Studio's model settings"
                           if not hook_secret else "add the header X-UniPixel-Secret: <UNIPIXEL_WEBHOOK_SECRET> "
                           "to this webhook in Label Studio (Settings > Webhooks > Headers)")

    return _auth


def _register_protocol(app: Flask, engine: Engine, settings: Settings) -> None:
    """``POST /setup``, ``/predict`` and ``/webhook``: a :class:`UniPixelBackend` per request, as Label Studio's ML
    server builds one, over bodies :mod:`backend.limits` checked first."""
    limits = RequestLimits.from_settings(settings)

    def backend(project: object = None, label_config: str | None = None) -> UniPixelBackend:
        return UniPixelBackend(engine, _project_id(project), label_config)

    def _json() -> dict:
        if not request.is_json:
            raise BadRequest("the body must be a JSON object (Content-Type: application/json)", field="body")
        check_body_size(request.content_length, limits)  # before reading a byte of it
        return parse_json_body(request.get_data(cache=True), limits)

    @app.post("/setup")
    def setup():
        body = _json()
        model = backend(body.get("project"), body.get("schema"))
        return jsonify(model_version=model.model_version)

    @app.post("/predict")
    def predict():
        body = _json()
        check_predict_body(body, limits, settings.text_field)
        params = body.get("params") or {}
        if not isinstance(params, dict):
            raise BadRequest("'params' must be an object", field="params")
        model = backend(body.get("project"), body.get("label_config"))
        results = model.predict(body.get("tasks"), context=params.get("context"))
        return jsonify(results=results, model_version=model.model_version)

    @app.post("/webhook")
    def webhook():
        body = _json()
        action = body.get("action")
        if not isinstance(action, str):
            raise BadRequest("webhook payload has no 'action' (a string such as ANNOTATION_CREATED)", field="action")
        result = backend(body.get("project")).fit(action, body)
        return jsonify(status="ok", result=result), 201 if result.get("status") in ("queued", "coalesced") else 200


def _register_status(app: Flask, engine: Engine) -> None:
    """``GET /`` and ``/health`` (instant, never load the model), ``/versions`` and ``/metrics``."""

    @app.get("/")
    @app.get("/health")
    def health():
        return jsonify(status="UP", model_class="UniPixelBackend", model_loaded=engine.loaded,
                       model_version=engine.model_version())

    @app.get("/versions")
    def versions():
        listed = engine.versions.list()
        return jsonify(versions=[v.get("version") for v in listed], details=listed,
                       current=engine.model_version(), last_runs=engine.versions.last_runs(),
                       refused=engine.versions.refused())

    @app.get("/metrics")
    def metrics():
        return jsonify(sessions=len(engine.sessions), model_loaded=engine.loaded,
                       background_jobs=len(engine.running_jobs()))


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


def _register_errors(app: Flask, redactor: Redactor, settings: Settings) -> None:
    def reply_with(message: str, status: int, field: str | None = None):
        message = redactor.scrub(message)
        reply = jsonify(error=message, errors=[message], status=status, **({"field": field} if field else {}))
        reply.status_code = status
        if status == 503:  # busy, or the training queue is down: Label Studio may retry
            reply.headers["Retry-After"] = str(RETRY_AFTER_S)
        return reply

    @app.errorhandler(BackendError)
    def _backend_error(err: BackendError):
        # Label Studio shows the annotator nothing of an error body: the log is where the reason is read
        logger.warning("%s %s -> %d: %s", request.method, request.path, err.status, err)
        reply = reply_with(str(err), err.status, err.field)
        if isinstance(err, Busy):
            reply.headers["Retry-After"] = str(err.retry_after_s)
        if isinstance(err, Unauthorized):
            reply.headers["WWW-Authenticate"] = 'Basic realm="unipixel"'
        if isinstance(err, NothingToTrain):
            reply.status = f"{err.status} {err.reason_phrase}"
        return reply

    @app.errorhandler(UniPixelInputError)
    def _model_input_error(err: UniPixelInputError):
        logger.warning("%s %s -> 422: %s", request.method, request.path, err)
        return reply_with(str(err), 422)

    @app.errorhandler(RequestEntityTooLarge)
    def _too_large(err: RequestEntityTooLarge):  # a chunked body that passed the Content-Length check
        return _backend_error(PayloadTooLarge(f"the request body is over {settings.max_request_bytes} bytes "
                                              "(UNIPIXEL_MAX_REQUEST_MB)", field="body"))

    @app.errorhandler(HTTPException)
    def _http_error(err: HTTPException):
        return reply_with(f"{err.name}: {err.description}", err.code or 500)

    @app.errorhandler(Exception)
    def _unexpected(err: Exception):
        incident = uuid.uuid4().hex[:12]
        logger.exception("unexpected error (incident %s)", incident)
        reply = jsonify(error=f"internal error ({err.__class__.__name__}); see the backend log, incident {incident}",
                        status=500)
        reply.status_code = 500
        return reply
