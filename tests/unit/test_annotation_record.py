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


def _update_history(record: AnnotationRecord, versions: int) -> None:
    """A day of annotating without a run: every Update of tasks 1-3 sends the whole annotation again, then task 2's
    annotation is deleted, and an empty resubmission of task 3 comes last (a run skips empty annotations)."""
    record.folder.mkdir(parents=True, exist_ok=True)
    for version in range(versions):
        for task in (1, 2, 3):
            record.append_event({"action": "ANNOTATION_UPDATED", "task": {"id": task, "data": {"image": "a.png"}},
                                 "annotation": {"id": 10 * task, "updated_at": f"t{version:04d}",
                                                "result": [{"value": {"text": ["x" * 200]}}]}})
    record.append_event({"action": "ANNOTATIONS_DELETED", "annotations": [{"id": 20, "result": [{"big": "y" * 500}]}]})
    record.append_event({"action": "ANNOTATION_UPDATED", "task": {"id": 3, "data": {}},
                         "annotation": {"id": 30, "updated_at": "t9999", "result": []}})


def _event_bytes(record: AnnotationRecord) -> int:
    return sum(p.stat().st_size for p in record.folder.glob("webhook_events.*"))


def test_compacting_the_events_keeps_what_a_run_would_train_on(tmp_path):
    """A project that never trains kept every webhook event for good. Compacted, the events hold the latest
    annotation of each task and the deleted ids, and the offline fallback reads exactly what it read before."""
    record = AnnotationRecord(tmp_path, 3)
    record.replace([_annotation(2, 20, "t0000"), _annotation(4, 40, "t0000")])  # task 2's is deleted by an event
    _update_history(record, 40)
    before, size = record.latest(), _event_bytes(record)
    assert [(a.task_id, a.updated_at) for a in before] == [(1, "t0039"), (3, "t0039"), (4, "t0000")]
    assert record.compact_events() == (122, 3)  # the two latest annotations and one row of deleted ids
    assert record.latest() == before
    assert _event_bytes(record) < size / 30
    assert not record.events.exists() and len(list(record.folder.glob("webhook_events.*.aside.jsonl"))) == 1
    assert [p.name for p in record.folder.iterdir() if p.suffix == ".tmp"] == []


def _append_versions(record: AnnotationRecord, tasks: int, versions: int) -> list[int]:
    """Append ``versions`` Updates of each task, compacting when due; returns the versions that compacted."""
    due = []
    for version in range(versions):
        for task in range(1, tasks + 1):
            row = {"action": "ANNOTATION_UPDATED", "task": {"id": task, "data": {}},
                   "annotation": {"id": task, "updated_at": f"t{version:04d}", "result": [{"v": "x" * 200}]}}
            if record.append_event(row, compact_above_bytes=20_000):
                due.append(version)
                record.compact_events()
    assert {a.updated_at for a in record.latest()} == {f"t{versions - 1:04d}"} and len(record.latest()) == tasks
    return due


def test_appending_events_compacts_them_once_they_outgrow_what_was_kept(tmp_path):
    """``append_event`` says when a compaction is due: the current file has grown past ``compact_above_bytes`` and
    past the size of what earlier compactions kept, so a project larger than that is rewritten once per project's
    worth of new events, not once per ``compact_above_bytes``."""
    small = AnnotationRecord(tmp_path, 3)  # 3 tasks: 1 kB kept, a compaction each 20 kB of events
    assert len(_append_versions(small, 3, 300)) == 15 and _event_bytes(small) < 21_000
    large = AnnotationRecord(tmp_path, 4)  # 100 tasks: 33 kB kept, so at most one compaction per version
    due = _append_versions(large, 100, 20)
    assert len(due) <= 20 and len(set(due)) == len(due), due
    assert _event_bytes(large) < 3 * 33_000


def test_a_gather_drops_compacted_events_like_any_other(tmp_path):
    record = AnnotationRecord(tmp_path, 3)
    _update_history(record, 3)
    record.compact_events()
    record.append_event({"action": "ANNOTATION_CREATED", "task": {"id": 5, "data": {}},
                         "annotation": {"id": 50, "updated_at": "t1", "result": [{"v": 1}]}})
    aside = record.set_events_aside()
    assert len(aside) == 2
    record.drop_events(aside)
    assert record.latest() == []


def test_a_malformed_deletion_event_is_skipped_not_fatal(tmp_path, caplog):
    """Anyone who knows the webhook URL can post to it, and what it posts is recorded: a deletion without an id
    made every offline run of the project (and each compaction) fail with a KeyError."""
    record = AnnotationRecord(tmp_path, 3)
    record.append_event({"action": "ANNOTATION_CREATED", "task": {"id": 1, "data": {}},
                         "annotation": {"id": 10, "updated_at": "t1", "result": [{"v": 1}]}})
    for junk in ([{"no": "id"}], ["ten"], [None], "20", [{"id": [1]}]):  # "20" reads as id 20: kept
        record.append_event({"action": "ANNOTATIONS_DELETED", "annotations": junk})
    record.append_event({"action": "ANNOTATION_DELETED", "annotation": None})
    for task, annotation in (({"id": "one"}, {"id": 11, "result": [1]}), ({"id": 2}, {"id": [1], "result": [1]})):
        record.append_event({"action": "ANNOTATION_UPDATED", "task": task, "annotation": annotation})
    assert [a.annotation_id for a in record.latest()] == [10]
    assert record.compact_events() == (9, 2) and [a.annotation_id for a in record.latest()] == [10]
    assert "malformed deletion" in caplog.text and "malformed annotation" in caplog.text


def _any_event():
    """One webhook event as Label Studio sends them: a create or update of a task's annotation (possibly cancelled
    or empty, possibly an older version arriving late), a deletion of some ids, or an event with no annotation."""
    from hypothesis import strategies as st

    annotation = st.fixed_dictionaries({
        "id": st.integers(1, 6), "updated_at": st.sampled_from(["t1", "t2", "t3", "t4"]),
        "result": st.sampled_from([[], [{"v": 1}], [{"v": 2}], [{"v": 3}]]),
        "was_cancelled": st.sampled_from([False, False, False, True])})
    saved = st.fixed_dictionaries({"action": st.sampled_from(["ANNOTATION_CREATED", "ANNOTATION_UPDATED"]),
                                   "task": st.fixed_dictionaries({"id": st.integers(1, 4), "data": st.just({})}),
                                   "annotation": annotation})
    deleted = st.fixed_dictionaries({"action": st.just("ANNOTATIONS_DELETED"),
                                     "annotations": st.lists(st.builds(dict, id=st.integers(1, 6)), max_size=2)})
    return st.one_of(saved, saved, saved, deleted, st.just({"action": "PROJECT_UPDATED"}))


def test_compaction_never_changes_what_an_offline_run_reads():
    """Any history of events, compacted at any points, and with or without a record from an earlier gather: the
    offline fallback (``latest``) reads the same annotations as from the events uncompacted."""
    import tempfile

    from hypothesis import given, settings
    from hypothesis import strategies as st

    @settings(max_examples=300, deadline=None)
    @given(events=st.lists(_any_event(), max_size=25), cuts=st.sets(st.integers(0, 25), max_size=3),
           recorded=st.booleans())
    def check(events, cuts, recorded):
        with tempfile.TemporaryDirectory() as folder:
            plain, compacted = AnnotationRecord(folder, 1), AnnotationRecord(folder, 2)
            for record in (plain, compacted):
                if recorded:
                    record.replace([_annotation(1, 1, "t2"), _annotation(3, 5, "t1")])
            for n, event in enumerate(events):
                plain.append_event(event)
                compacted.append_event(event)
                if n in cuts:
                    compacted.compact_events()
            assert compacted.latest() == plain.latest()
            compacted.compact_events()
            assert compacted.latest() == plain.latest()

    check()


def test_a_compaction_under_way_elsewhere_is_not_repeated(tmp_path):
    """Several events can find a compaction due before the first one has run, in this process or in another backend
    sharing the data folder: a second compaction returns at once instead of queueing behind the first."""
    import fcntl

    record = AnnotationRecord(tmp_path, 3)
    _update_history(record, 3)
    with open(record.folder / ".compact.lock", "a") as other:
        fcntl.flock(other, fcntl.LOCK_EX)  # another process is compacting this project
        before = sorted(p.name for p in record.folder.iterdir())
        assert record.compact_events() is None
        assert sorted(p.name for p in record.folder.iterdir()) == before
    assert record.compact_events() == (11, 3)
