"""Per-task annotation sessions: decoded frames, features and the object memory bank, cached.

A :class:`TaskSession` wraps the model's :class:`InferenceSession` for one task plus what the
backend remembers about it (which Label Studio region became which object ``[n]``). The
registry keeps at most ``max_sessions`` of them (least recently used first out), drops those idle
longer than ``ttl_s``, and reopens a task whose media changed.
"""

from __future__ import annotations

import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field

from backend.converters.annotation import MediaShape
from unipixel_model.session import InferenceSession


@dataclass
class TrackedObject:
    """A Label Studio object known to a session.

    Attributes:
        obj_id: its id in the model's memory bank (``[obj_id]`` in questions; internal only).
        region_id: its LS region id: fresh (``region_ids.new_object_id``) for objects the backend
            creates, the annotator's own id for a box they drew (so their region becomes the track).
        label: LS label to write on its regions.
        signature: what created it (an identical region sent again is served from the session).
        fixed_frames: 0-based frames the annotator prompted or corrected (never overwritten).
        description: the model's description, or the annotator's once they edited it.
        description_by_annotator: True once the annotator wrote the description (never replaced).
        keyframe: the annotator's own LS keyframe of a video box prompt (written back as drawn).
    """

    obj_id: int
    region_id: str
    label: str | None
    signature: str = ""
    fixed_frames: set[int] = field(default_factory=set)
    description: str | None = None
    description_by_annotator: bool = False
    keyframe: dict | None = None


@dataclass
class TaskSession:
    """One task's session. ``lock`` serialises calls on the same task.

    ``objects`` is keyed by LS region id; ``clicks`` maps every smart click applied so far (its LS
    region id) to the region id of the object it went to, so a click sent again is never re-applied.
    """

    task_id: int
    media_key: str
    session: InferenceSession
    shape: MediaShape
    objects: dict[str, TrackedObject] = field(default_factory=dict)
    clicks: dict[str, str] = field(default_factory=dict)
    queries: dict[str, list[str]] = field(default_factory=dict)
    last_used: float = field(default_factory=time.monotonic)
    lock: threading.RLock = field(default_factory=threading.RLock)

    def next_obj_id(self) -> int:
        """A memory-bank id for a new object (internal; LS never sees it)."""
        return self.session.new_object_id()

    def live(self) -> list[TrackedObject]:
        """Objects still in the memory bank, oldest first."""
        return [o for o in self.objects.values() if self.session.has(o.obj_id)]

    @property
    def nbytes(self) -> int:
        return self.session.cache_bytes


class SessionRegistry:
    """LRU + TTL cache of :class:`TaskSession` by task id (thread-safe)."""

    def __init__(self, max_sessions: int, ttl_s: float) -> None:
        self.max_sessions, self.ttl_s = max_sessions, ttl_s
        self._sessions: OrderedDict[int, TaskSession] = OrderedDict()
        self._lock = threading.Lock()
        self.opened = 0  # sessions created (tests and benchmarks read it)

    def get(self, task_id: int, media_key: str, open_session: Callable[[], TaskSession]) -> TaskSession:
        """The task's session, reopened with ``open_session()`` when missing, expired or its media changed."""
        with self._lock:
            self._expire()
            entry = self._sessions.get(task_id)
            if entry is not None and entry.media_key == media_key:
                entry.last_used = time.monotonic()
                self._sessions.move_to_end(task_id)
                return entry
            self._sessions.pop(task_id, None)
        entry = open_session()  # decoding happens outside the registry lock
        with self._lock:
            self._sessions[task_id] = entry
            self.opened += 1
            while len(self._sessions) > self.max_sessions:
                self._sessions.popitem(last=False)
        return entry

    def peek(self, task_id: int) -> TaskSession | None:
        with self._lock:
            return self._sessions.get(task_id)

    def clear(self) -> None:
        """Forget every session (after a model version change: cached features are stale)."""
        with self._lock:
            self._sessions.clear()

    def __len__(self) -> int:
        return len(self._sessions)

    def _expire(self) -> None:
        now = time.monotonic()
        for task_id in [t for t, s in self._sessions.items() if now - s.last_used > self.ttl_s]:
            del self._sessions[task_id]
