"""Label Studio region ids of the backend's objects.

The editor replaces a region in place when an answer carries an id it already holds, so every
object the backend creates gets an id never used before: ``unipixel-<task>-<random hex>``, not a
counter that ``forget``, an expired session or a restart could hand out again. Frame lists write one
region per frame, ``<base>-f<k>`` with ``k`` the 1-based image number (Label Studio's numbering).
"""

from __future__ import annotations

import re
import secrets

PREFIX = "unipixel-"
_FRAME_SUFFIX = re.compile(r"^(?P<base>.+)-f(?P<ls_frame>[1-9]\d*)$")


def new_object_id(task_id: int) -> str:
    """A fresh region id for an object of task ``task_id`` (64 random bits: never reused)."""
    return f"{PREFIX}{task_id}-{secrets.token_hex(8)}"


def frame_region_id(base_id: str, frame_idx: int) -> str:
    """The id of an object's region on 0-based frame ``frame_idx`` of a frame list."""
    return f"{base_id}-f{frame_idx + 1}"


def base_region_id(region_id: str) -> str:
    """``region_id`` without a frame-list suffix (``unipixel-3-ab12-f4`` -> ``unipixel-3-ab12``)."""
    match = _FRAME_SUFFIX.match(region_id)
    return match.group("base") if match else region_id


def is_backend_region(region_id: object) -> bool:
    """True for ids the backend wrote (its suggestions, accepted or not, come back with them)."""
    return isinstance(region_id, str) and region_id.startswith(PREFIX)
