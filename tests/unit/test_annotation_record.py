"""The local record of a project stays the size of the project, not of its history, and loses nothing in an
outage (``finetune/gather.py``). The record held every version of every annotation and the webhook events file
every event ever received (a video annotation's masks are megabytes, saved at every Update), and each run read
both whole."""

from __future__ import annotations

import json

from finetune.gather import AnnotationRecord, GatheredAnnotation, gather

CONFIG = "<View><Image name='image' value='$image'/></View>"


def _annotation(task_id: int, annotation_id: int, updated_at: str, text: str = "x") -> GatheredAnnotation:
    return GatheredAnnotation(task_id, {"image": "a.png"}, annotation_id, [{"value": {"text": [text]}}], updated_at)


def _event(task_id: int, annotation_id: int, updated_at: str, action: str = "ANNOTATION_UPDATED") -> str:
    return json.dumps({"action": action, "task": {"id": task_id, "data": {"image": "a.png"}},
                       "annotation": {"id": annotation_id, "updated_at": updated_at,
                                      "result": [{"value": {"text": ["e"]}}]}}) + "\n"


def test_a_gather_replaces_the_record_with_what_label_studio_holds(tmp_path):
    record = AnnotationRecord(tmp_path, 3)
    assert record.replace([_annotation(1, 10, "t1"), _annotation(2, 20, "t1")]) == 2
    assert record.replace([_annotation(1, 10, "t2")]) == 1  # task 1 updated, task 2's annotation deleted in LS
    lines = record.path.read_text().splitlines()
    assert len(lines) == 1 and json.loads(lines[0])["updated_at"] == "t2"
    assert [(a.task_id, a.updated_at) for a in record.latest()] == [(1, "t2")]
    assert [p.name for p in record.folder.iterdir() if p.name.startswith(".")] == []  # no temporary file left


def test_events_set_aside_are_still_read_until_they_are_dropped(tmp_path):
    record = AnnotationRecord(tmp_path, 3)
    record.folder.mkdir(parents=True)
    record.events.write_text(_event(1, 10, "t1"))
    with open(record.events, "a") as in_flight:  # the backend's append, opened before the rename
        aside = record.set_events_aside()
        in_flight.write(_event(2, 20, "t1"))
    record.events.write_text(_event(3, 30, "t1"))  # the backend's next event: a new file
    assert len(aside) == 1 and not record.events.samefile(aside[0])
    assert [a.task_id for a in record.latest()] == [1, 2, 3]  # an outage now: every event still counts
    record.drop_events(aside)
    assert [a.task_id for a in record.latest()] == [3] and record.set_events_aside() != aside


def test_label_studio_unreachable_keeps_the_events_set_aside_for_the_next_gather(tmp_path):
    """A gather that set the events aside and then found Label Studio down trains on them, and leaves them for the
    next gather, which drops every set-aside file once Label Studio answers."""
    record = AnnotationRecord(tmp_path, 3)
    record.save_config(CONFIG)
    record.replace([_annotation(1, 10, "t1")])
    record.events.write_text(_event(1, 10, "t2") + _event(2, 20, "t1"))
    gathered = gather(tmp_path, "http://127.0.0.1:9", "token", 3)  # port 9 (discard): connection refused
    assert gathered.source == "local record"
    assert [(a.task_id, a.updated_at) for a in gathered.annotations] == [(1, "t2"), (2, "t1")]
    assert len(list(record.folder.glob("webhook_events.*.aside.jsonl"))) == 1 and not record.events.exists()
    again = gather(tmp_path, "http://127.0.0.1:9", "token", 3)
    assert [(a.task_id, a.updated_at) for a in again.annotations] == [(1, "t2"), (2, "t1")]


def test_without_a_label_studio_url_the_events_stay_where_they_are(tmp_path):
    record = AnnotationRecord(tmp_path, 3)
    record.save_config(CONFIG)
    record.events.write_text(_event(2, 20, "t1") + _event(2, 20, "t1", action="ANNOTATION_DELETED"))
    assert gather(tmp_path, "", "", 3).annotations == []  # deleted by its later event
    assert record.events.exists() and not list(record.folder.glob("*.aside.jsonl"))


def test_a_record_that_cannot_be_written_stays_as_it_was(tmp_path, monkeypatch):
    """A full disk while the record is rewritten: the old record stays whole and no temporary copy is left."""
    import pytest

    record = AnnotationRecord(tmp_path, 3)
    record.replace([_annotation(1, 10, "t1")])
    before = record.path.read_text()
    monkeypatch.setattr(json, "dumps", lambda *a, **k: (_ for _ in ()).throw(OSError(28, "No space left on device")))
    with pytest.raises(OSError, match="No space left"):
        record.replace([_annotation(1, 10, "t2")])
    monkeypatch.undo()
    assert record.path.read_text() == before and [p.name for p in record.folder.iterdir()] == ["annotations.jsonl"]
