"""RQ entry points: one fine-tune of a Label Studio project, end to end.

``run_training(spec)`` gathers the project's labels, converts them to samples, holds out part of
the tasks, trains from the base model, evaluates before and after, and publishes the adapter as a
new version when it is not worse. CUDA is touched only inside the job (the worker forks first).
Progress (stage, step, loss, ETA) goes into ``job.meta`` and the log.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from backend.converters.annotation import MediaShape
from backend.errors import MediaError, PromptError
from backend.label_config import parse_label_config
from backend.ls_client import LabelStudioClient
from backend.media import MediaFetcher
from backend.task_data import media_value
from finetune.convert import LabeledTask, task_to_samples
from finetune.gather import GatheredAnnotation, gather
from finetune.sample import TrainSample
from finetune.settings import FinetuneSettings
from finetune.split import split_by_task
from unipixel_model.errors import UniPixelInputError

if TYPE_CHECKING:
    from finetune.recipe import TrainRecipe

logger = logging.getLogger(__name__)


def run_training(spec: dict) -> dict:
    """The RQ job: ``spec`` = {"project_id", "reason", "recipe", "recipe_overrides"?}."""
    from rq import get_current_job

    from finetune import queue

    job = get_current_job()
    if job is not None:
        queue.started(job.connection, int(spec["project_id"]))
        job.meta.update({"pid": os.getpid(), "stage": "starting"})
        job.save_meta()
    return execute_recorded(FinetuneSettings.from_env(), spec, _Reporter(job))


def execute_recorded(settings: FinetuneSettings, spec: dict, report: Callable[..., None] | None = None) -> dict:
    """:meth:`FinetuneRun.execute`, and when the run breaks (a bad recipe, the base model gone, Label Studio
    unreachable, a crash in training), its outcome ``failed`` with the reason is recorded where the annotator and the
    operator look (``/versions`` ``last_runs``, the job's meta, the log) before the error goes on to fail the job."""
    run = None
    try:
        run = FinetuneRun(settings, spec, report)
        return run.execute()
    except Exception as err:  # noqa: BLE001  re-raised: the job fails and RQ keeps the traceback
        if run is None or not run.recorded:
            reason = (f"the run broke before publishing ({err.__class__.__name__}: {err}); nothing was published and "
                      "the served version stays; the worker log has the traceback")
            record_outcome(settings, spec, {"status": "failed", "reason": reason}, report)
        raise


def scheduled_training(spec: dict) -> dict:
    """The periodic check: queue a run when annotations arrived since the last one."""
    from redis import Redis
    from rq import get_current_job

    from finetune.queue import QueuePolicy, TrainingQueue, key

    settings = FinetuneSettings.from_env()
    job = get_current_job()
    redis: Redis = job.connection
    project_id = int(spec["project_id"])
    redis.delete(key("scheduled", project_id))
    if int(redis.get(key("count", project_id)) or 0) == 0:
        return {"status": "nothing new"}
    policy = QueuePolicy(settings.train_every_n, settings.train_every_minutes, settings.train_job_timeout_s,
                         spec.get("recipe", settings.train_recipe))
    return TrainingQueue(redis, settings.train_queue, policy).enqueue(project_id, "schedule")


def served_recipe(recipe: TrainRecipe, settings: FinetuneSettings) -> TrainRecipe:
    """The recipe a job trains with: SAM 2 at the side the server serves at (``UNIPIXEL_SAM2_IMAGE_SIZE``), so the
    held-out scores in ``/versions`` are the served model's, unless the recipe sets its own ``sam2_image_size``."""
    if recipe.sam2_image_size or not settings.sam2_image_size:
        return recipe
    return dataclasses.replace(recipe, sam2_image_size=settings.sam2_image_size)


class _Reporter:
    """Writes progress to the RQ job's meta (when running under RQ) and the log."""

    def __init__(self, job) -> None:
        self.job = job

    def __call__(self, **meta) -> None:
        from redis.exceptions import RedisError

        logger.info("fine-tune progress: %s", meta)
        if self.job is not None:
            self.job.meta.update(meta)
            try:
                self.job.save_meta()
            except RedisError as err:  # progress is best-effort: a Redis restart must not end hours of training
                logger.warning("fine-tune progress not saved to Redis (%s: %s); training goes on",
                               err.__class__.__name__, err)


class FinetuneRun:
    """One fine-tune (also what ``python -m finetune run --project ID`` executes)."""

    def __init__(self, settings: FinetuneSettings, spec: dict, report=None) -> None:
        from finetune.recipe import load_recipe

        self.settings, self.spec = settings, spec
        self.project_id = int(spec["project_id"])
        recipe = load_recipe(spec.get("recipe") or settings.train_recipe)
        self.recipe = dataclasses.replace(recipe, **(spec.get("recipe_overrides") or {}))
        self.report = report or _log_progress
        self.skipped_tasks: list[str] = []  # tasks whose annotation could not be read, and why
        self.recorded = False  # the outcome is in /versions already

    def execute(self) -> dict:
        """Gather, convert, train, evaluate, publish; returns the run summary (also the RQ job result)."""
        started = time.time()
        self.report(stage="gathering")
        gathered = gather(self.settings.data_dir, self.settings.label_studio_url, self.settings.label_studio_api_key,
                          self.project_id)
        train, holdout = self.samples(gathered.label_config, gathered.annotations)
        if not train:
            return self._record({"status": "nothing to train", "tasks": len(gathered.annotations),
                                 "holdout_samples": len(holdout), "source": gathered.source,
                                 "skipped_tasks": self.skipped_tasks,
                                 "reason": nothing_to_train(self.project_id, gathered.annotations, len(holdout),
                                                            self.skipped_tasks)})
        from finetune.trainer import Trainer

        trainer = Trainer.from_recipe(served_recipe(self.recipe, self.settings), checkpoint=self.settings.model,
                                      frame_max_side=self.settings.frame_max_side)
        before = self._evaluate(trainer, holdout, "before")
        result = trainer.train(train, progress=self._progress)
        after = self._evaluate(trainer, holdout, "after")
        summary = {"project": self.project_id, "reason": self.spec.get("reason"), "source": gathered.source,
                   "train_samples": len(train), "holdout_samples": len(holdout), "steps": result.steps,
                   "final_loss": result.losses[-1] if result.losses else None, "before": before, "after": after,
                   "seconds": round(time.time() - started, 1), "skipped": result.skipped,
                   "skipped_tasks": self.skipped_tasks}
        refusal = publish_refusal(before, after, self.recipe.min_improvement)
        if refusal is not None:
            self.report(stage="not published")
            return self._record({**summary, "status": "not published", "reason": refusal})
        try:
            published = self._publish(trainer, result, summary)
        except Exception as err:  # noqa: BLE001  MODEL_DIR full or unwritable (OSError, or the writer's own error
            # type): publish() removed its partial copy; the reason is recorded and the job still fails
            self._record({**summary, "status": "publish failed", "reason": (
                f"could not write the new version to MODEL_DIR {self.settings.model_dir} ({err}); the previous "
                "version is still served")})
            raise
        return self._record({**summary, **published})

    def _record(self, outcome: dict) -> dict:
        """Log the outcome and keep it as the project's last run (``GET /versions`` shows it)."""
        self.recorded = True
        return record_outcome(self.settings, self.spec, outcome, self.report)

    def samples(self, label_config: str, annotations: list[GatheredAnnotation]) -> tuple[list, list]:
        """(train, holdout) samples, split by task (:func:`finetune.split.split_by_task`)."""
        spec = parse_label_config(label_config)
        client = LabelStudioClient(self.settings.label_studio_url, self.settings.label_studio_api_key) \
            if self.settings.label_studio_url else None
        fetcher = MediaFetcher(self.settings.media_policy(self.settings.data_dir / "media"), client)
        samples: list[TrainSample] = []
        for item in annotations:
            try:
                task = _labeled_task(item, spec, fetcher, self.settings.frame_max_side)
                samples.extend(task_to_samples(task, spec))
            except (PromptError, MediaError, UniPixelInputError) as err:
                # one malformed annotation, or media gone, refused or undecodable since labeling, costs its task,
                # not the run
                self.skipped_tasks.append(f"task {item.task_id}: {err}")
                logger.warning("fine-tune project %d: task %d is left out: %s", self.project_id, item.task_id, err)
        return split_by_task(samples, self.recipe.holdout_fraction)

    def _evaluate(self, trainer, holdout: list[TrainSample], when: str) -> dict:
        from finetune.evaluate import EvalReport, evaluate_holdout

        self.report(stage=f"evaluating {when}")
        if not holdout:
            return EvalReport().to_dict()
        return evaluate_holdout(trainer.model, trainer.tokenizer, holdout, self.recipe.max_new_tokens,
                                self.settings.frame_max_side).to_dict()

    def _progress(self, step: int, total: int, loss: float, eta_s: float) -> None:
        self.report(stage="training", step=step, total_steps=total, loss=round(float(loss), 5), eta_s=round(eta_s, 1))

    def _publish(self, trainer, result, summary: dict) -> dict:
        from finetune.publish import new_version_name, publish

        self.report(stage="publishing")
        version = new_version_name(self.project_id)
        info = {**summary, "base_model": self.settings.model, "recipe": self.recipe.name, "losses": result.losses}
        path = publish(Path(self.settings.model_dir), version, trainer.save_adapter, info, result.losses,
                       keep=self.settings.keep_versions)
        self.report(stage="published", version=version)
        return {"status": "published", "version": version, "path": str(path)}


def _log_progress(**meta) -> None:
    logger.info("fine-tune progress: %s", meta)


def record_outcome(settings: FinetuneSettings, spec: dict, outcome: dict,
                   report: Callable[..., None] | None = None) -> dict:
    """Log a run's ``outcome`` ({"status", "reason"?, ...}), put it in the job's meta (``report``) and keep it as
    the project's last run in ``MODEL_DIR`` (``GET /versions`` shows it). Returns ``outcome``."""
    from backend.versions import VersionStore

    project_id = int(spec["project_id"])
    if outcome["status"] != "published":
        logger.warning("fine-tune project %d: %s: %s", project_id, outcome["status"], outcome["reason"])
        (report or _log_progress)(stage=outcome["status"], reason=outcome["reason"])
    brief = {k: outcome[k] for k in ("status", "version", "tasks", "train_samples", "holdout_samples") if k in outcome}
    brief.update(trigger=spec.get("reason"), **({"reason": outcome["reason"]} if outcome["status"] != "published"
                                                 else {}))
    try:
        VersionStore(Path(settings.model_dir)).record_run(project_id, {**brief, "finished": time.time()})
    except OSError as err:  # the outcome is still the job's result and in the log
        logger.warning("cannot record the run of project %d in %s: %s", project_id, settings.model_dir, err)
    return outcome


def publish_refusal(before: dict, after: dict, min_improvement: float) -> str | None:
    """Why a run must not be published, from its held-out reports (``EvalReport.to_dict()``) before and after
    training; None when it may be.

    The held-out score must rise by ``min_improvement``, and the model must answer a segmentation question with a
    mask on as many held-out media as before: a project's own tasks may hold no text query (box-only tracks train
    ``[1] <|seg|>`` answers alone), so without this check a run could make every text query fail and still publish.
    """
    if after["score"] < before["score"] + min_improvement:
        return (f"held-out score {after['score']:.4f} after training is not above {before['score']:.4f} before "
                f"by the recipe's min_improvement {min_improvement}")
    was, now = before.get("text_answers_with_mask"), after.get("text_answers_with_mask")
    if was and now and now["share"] < was["share"]:
        media = now["media"]
        return (f"after training the model answers a segmentation question with a mask on "
                f"{round(now['share'] * media)} of {media} held-out media, against {round(was['share'] * media)} "
                "before: publishing it would break text queries, so the served version stays (set "
                "train_llm_on_prompts: false in the recipe, so that clicks, boxes and masks leave the LLM alone, or "
                "train fewer steps)")
    return None


def nothing_to_train(project_id: int, annotations: list[GatheredAnnotation], held_out: int,
                     skipped: Sequence[str] = ()) -> str:
    """Why a run found no training sample, in the words the annotator and the operator need.

    Args:
        skipped: ``"task <id>: <reason>"`` per task left out (malformed annotation, media unreadable).
    """
    shown = "; ".join(skipped[:3]) + (f"; and {len(skipped) - 3} more" if len(skipped) > 3 else "")
    if annotations and len(skipped) == len(annotations):
        return (f"all {len(annotations)} annotated task(s) of project {project_id} were left out: {shown}. Fix the "
                "annotations or make their media readable again, then press Start Training")
    if not annotations:
        return (f"project {project_id} has no submitted annotations in Label Studio; label some tasks, submit them, "
                "then press Start Training")
    if held_out:
        return (f"the {len(annotations)} annotated task(s) of project {project_id} all went to the held-out split "
                f"({held_out} samples); annotate at least one more task")
    kinds = sorted({str(r.get("type")) for a in annotations for r in a.result if isinstance(r, dict)})
    return (f"the {len(annotations)} annotation(s) of project {project_id} hold nothing this labeling config trains "
            f"on (region types found: {', '.join(kinds) or 'none'}); it needs masks, boxes or box tracks of the "
            "config's own controls, or a query with its masks" + (f"; left out: {shown}" if skipped else ""))


def _labeled_task(item: GatheredAnnotation, spec, fetcher: MediaFetcher, max_side: int | None = None) -> LabeledTask:
    """Download the task's media once (cached) and read its size and frame count (decoding it with ``max_side``, as
    the trainer will: see :func:`~unipixel_model.media.load_frames`)."""
    from unipixel_model.media import load_frames

    value, mode = media_value({"id": item.task_id, "data": item.data}, spec), spec.strategy
    # frame lists: a stable folder of links in the media cache (samples refer to it)
    folder = mode.stable_folder(fetcher, value) if mode.frame_list else None
    media = mode.fetch(fetcher, value, item.task_id, folder)
    frames = load_frames(media, max_side=max_side)
    height, width = frames.size_hw
    ls_fps = spec.framerate(item.data) if mode.timed else 0.0
    shape = MediaShape(frames.num_frames, height, width, *mode.timing(frames.fps, ls_fps))
    return LabeledTask(item.task_id, item.data, item.result, str(media), shape)
