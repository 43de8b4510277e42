"""``UniPixelBackend``: the ``LabelStudioMLBase`` contract (``setup``, ``predict``, ``fit``) over the engine.

Built per request, as Label Studio's ML server does; the weights live in :class:`backend.engine.Engine`.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Literal

from backend.annotate import ObjectUpdate, keep_descriptions, run_prompts
from backend.converters.prompts import ContextPrompts, PromptControls, context_to_prompts, wants_model
from backend.converters.results import prediction
from backend.engine import Engine, Serving, log_cut_off
from backend.errors import BackendError, BadRequest, LabelStudioError
from backend.label_config import LabelSpec, parse_label_config
from backend.media import MediaFetcher
from backend.render import render_updates
from backend.sessions import TaskSession
from backend.task_data import media_key, media_value, task_id_of
from backend.task_media import open_task_session

logger = logging.getLogger(__name__)
BACKGROUND_CHUNK = 16  # frames propagated per GPU-lock hold in the background
Ended = Literal["tracked", "dropped", "stopped", "failed"]  # how a background track ended


class UniPixelBackend:
    """One request's view of the model.

    Args:
        engine: the process's engine (model, sessions, locks).
        project_id: Label Studio project id (from ``"7.1700000000"`` uids, the integer part).
        label_config: the project's labeling config XML.
    """

    def __init__(self, engine: Engine, project_id: int | None = None, label_config: str | None = None) -> None:
        self.engine, self.settings = engine, engine.settings
        self.project_id, self.label_config = project_id, label_config
        self.model_version = ""
        self.client = engine.ls_client
        self.fetcher = MediaFetcher(self.settings.media_policy(), self.client)
        self.setup()

    def setup(self) -> None:
        """Cheap (LS gives ``/setup`` 3 s): the version name only; weights load on first predict."""
        self.model_version = self.engine.model_version()

    # ---- predict ---------------------------------------------------------------------------
    def predict(self, tasks: list[dict], context: dict | None = None, **kwargs) -> list[dict | list]:
        """One entry per task, in order: a prediction, or (batch calls) ``[]`` for a task with nothing to predict.
        With ``context`` (interactive), exactly one task and one prediction."""
        if not isinstance(tasks, list) or not tasks:
            raise BadRequest("'tasks' must be a non-empty list of Label Studio tasks")
        spec = parse_label_config(self.label_config)
        if context:
            if len(tasks) != 1:
                raise BadRequest(f"an interactive call carries one task, got {len(tasks)}")
            return [self._interactive(tasks[0], context, spec)]
        return self._batch(tasks, spec)

    def _interactive(self, task: dict, context: dict, spec: LabelSpec) -> dict:
        controls = PromptControls(spec.prompt.name if spec.prompt else None,
                                  spec.description.name if spec.description else None)
        if not wants_model(context, controls):
            # {"result": []} after every Submit/Update, or only the backend's own regions:
            # nothing to compute, so no session is opened and the GPU lock is not taken
            self._keep_descriptions(task, context, controls)
            return prediction([], self.model_version)
        with self.engine.admitted(), self.engine.gpu:
            serving = self.engine.serving()
            self.model_version = serving.version
            ts = self._task_session(task, spec, serving)
            with ts.lock:
                prompts = context_to_prompts(context, ts.shape, controls)
                with ts.session.deadline(time.monotonic() + self.settings.interactive_budget_s):
                    call = run_prompts(ts, prompts, spec.default_label, self._describes(spec))
                pred = prediction(render_updates(ts.shape, spec, call.updates), serving.version)
                incomplete = ts.session.incomplete()
        for why in call.skipped:  # Label Studio shows annotators nothing of ours: the log says it
            logger.warning("task %s: skipped: %s", ts.task_id, why)
        if incomplete:
            region_ids = [u.tracked.region_id for u in call.updates]
            marker = self.engine.pending.add(ts.task_id, region_ids)
            self.engine.submit(self._finish, ts, spec, region_ids, serving.version, marker, task_id=ts.task_id,
                               what=f"the full track of {', '.join(region_ids)}")
        return pred

    def _describes(self, spec: LabelSpec) -> bool:
        return self.settings.describe_objects and spec.description is not None

    def _keep_descriptions(self, task: dict, context: dict, controls: PromptControls) -> None:
        """Store descriptions the annotator edited, if the task's session is open (no GPU needed)."""
        ts = self.engine.sessions.peek(task_id_of(task))
        if ts is None:
            return
        with ts.lock:
            keep_descriptions(ts, context_to_prompts(context, ts.shape, controls).descriptions)

    def _batch(self, tasks: list[dict], spec: LabelSpec) -> list[dict | list]:
        """Text queries from the task data (``UNIPIXEL_TEXT_FIELD``); tasks past the budget finish
        in the background and are posted to Label Studio as predictions.

        A task without a query gets ``[]``, no prediction at all: Label Studio asks for one every time a task is
        opened, and stored an empty one, which the editor shows as a "<model> 0.00%" tab beside the annotation."""
        deadline = time.monotonic() + self.settings.batch_budget_s
        out, errors = [], []
        for task in tasks:
            task_id_of(task)
            text = task["data"].get(self.settings.text_field)
            if not isinstance(text, str) or not text.strip():
                out.append([])
            elif time.monotonic() > deadline and self.client is not None:
                self.engine.submit(self._predict_and_post, task, spec, text, task_id=task_id_of(task),
                                   what="the text-query prediction", recover="Retrieve Predictions recomputes it")
                out.append(prediction([], self.model_version))
            else:
                try:
                    out.append(self._text_prediction(task, spec, text))
                except BackendError as err:  # one bad task must not lose the others' predictions
                    logger.warning("task %s: %s", task.get("id"), err)
                    errors.append(err)
                    out.append(prediction([], self.model_version))
        if errors and len(errors) == len(tasks):  # every task failed: say why rather than answer nothing
            raise errors[0]
        return out

    def _text_prediction(self, task: dict, spec: LabelSpec, text: str) -> dict:
        with self.engine.admitted(), self.engine.gpu:
            serving = self.engine.serving()
            self.model_version = serving.version
            ts = self._task_session(task, spec, serving)
            with ts.lock:
                call = run_prompts(ts, ContextPrompts(text=text.strip()), spec.default_label, self._describes(spec))
                return prediction(render_updates(ts.shape, spec, call.updates), serving.version)

    def _task_session(self, task: dict, spec: LabelSpec, serving: Serving) -> TaskSession:
        return self.engine.sessions.get(task_id_of(task), media_key(media_value(task, spec)),
                                        lambda: open_task_session(self.settings, self.fetcher, serving.model,
                                                                  serving.tokenizer, task, spec))

    # ---- background ------------------------------------------------------------------------
    def _finish(self, ts: TaskSession, spec: LabelSpec, region_ids: list[str], version: str,
                marker: Path | None = None) -> dict | None:
        """Propagate what the interactive budget cut short, then post the full tracks to LS (``marker``: this
        work's entry in :class:`backend.pending.PendingTracks`, removed when it ends, kept when a stop cuts it off so
        that the next start says it too)."""
        ended: Ended = "failed"
        try:
            ended = self._propagate(ts, region_ids, version)
            return self._post_tracks(ts, spec, region_ids, version) if ended == "tracked" else None
        finally:
            if ended != "stopped":
                self.engine.pending.done(marker)

    def _propagate(self, ts: TaskSession, region_ids: list[str], version: str) -> Ended:
        """Track every frame left, a chunk per GPU-lock hold: "tracked", or "dropped" (the model changed) or
        "stopped" (the backend is stopping), each logged."""
        while True:
            with self.engine.gpu, ts.lock:
                if self.engine.stopping.is_set():
                    log_cut_off(ts.task_id, f"the full track of {', '.join(region_ids)}",
                                "is cut off and not posted to Label Studio")
                    return "stopped"
                if self.engine.serving().version != version:
                    logger.info("task %s: model changed to %s; the background track of %s is dropped",
                                ts.task_id, self.engine.model_version(), version)
                    return "dropped"
                pending = ts.session.incomplete()
                if not pending:
                    return "tracked"
                ts.session.continue_tracking(pending[0], BACKGROUND_CHUNK)

    def _post_tracks(self, ts: TaskSession, spec: LabelSpec, region_ids: list[str], version: str) -> dict:
        with ts.lock:  # rendering is CPU work: clicks on other tasks may use the GPU meanwhile
            updates = [ObjectUpdate(o, ts.session.track(o.obj_id)) for o in ts.live()
                       if o.region_id in region_ids]
            final = prediction(render_updates(ts.shape, spec, updates), version)
        if self.client is not None and final["result"]:
            self._post(ts.task_id, final, f"the full track of {', '.join(region_ids)}")
        return final

    def _predict_and_post(self, task: dict, spec: LabelSpec, text: str) -> None:
        pred = self._text_prediction(task, spec, text)
        if pred["result"] and self.client is not None:
            self._post(task_id_of(task), pred, "the text-query prediction")

    def _post(self, task_id: int, pred: dict, what: str) -> None:
        """Store a background prediction in LS; when LS cannot take it, say what was dropped and why (once, no
        traceback): the interactive answer the annotator already has stands."""
        try:
            self.client.post_prediction(task_id, pred)
        except LabelStudioError as err:
            logger.warning("task %s: %s was not stored in Label Studio and is dropped (%s); the annotator's "
                           "interactive answer stands, and Retrieve Predictions recomputes it", task_id, what, err)

    # ---- fit -------------------------------------------------------------------------------
    def fit(self, event: str, data: dict, **kwargs) -> dict:
        """Queue training work for an annotation event or START_TRAINING (never trains here)."""
        from backend.training import handle_event

        return handle_event(self.settings, event, data)
