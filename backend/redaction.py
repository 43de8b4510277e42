"""Keep tokens and passwords out of error bodies and logs.

Messages are built without secrets in the first place (``backend.media``, ``backend.ls_client``);
this module is the net under that: a :class:`Redactor` replaces every configured secret
(``LABEL_STUDIO_API_KEY``, the access token refreshed from it, ``BASIC_AUTH_PASS``, the webhook
secret) by ``***`` in the JSON error bodies of ``backend.api``, and :func:`protect_logs` does the
same for every log record of the process (a Label Studio that echoes our ``Authorization`` header
in an error page, or ``requests`` quoting a malformed header value, would otherwise leak them).
"""

from __future__ import annotations

import logging
import threading
import weakref
from collections.abc import Callable, Iterable

MASK = "***"
MIN_SECRET_CHARS = 4  # shorter values would mangle every message they occur in by chance


class Redactor:
    """Replaces the secrets ``source()`` returns (read on each call: access tokens change) in text.

    Args:
        source: returns the current secrets; empty and very short ones are ignored.
    """

    def __init__(self, source: Callable[[], Iterable[str | None]]) -> None:
        self.source = source

    def secrets(self) -> list[str]:
        """The current secrets, longest first (a secret containing another is masked whole)."""
        found = {s for s in self.source() if isinstance(s, str) and len(s) >= MIN_SECRET_CHARS}
        return sorted(found, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        """``text`` with every secret replaced by ``***``."""
        for secret in self.secrets():
            text = text.replace(secret, MASK)
        return text


_redactors: "weakref.WeakSet[Redactor]" = weakref.WeakSet()
_install_lock = threading.Lock()
_installed = False


def protect_logs(redactor: Redactor) -> None:
    """Mask ``redactor``'s secrets in every log record made from now on, by any logger, while the
    redactor is alive (the app holds it). Installs one record factory per process."""
    global _installed
    with _install_lock:
        _redactors.add(redactor)
        if _installed:
            return
        previous = logging.getLogRecordFactory()

        def factory(*args, **kwargs) -> logging.LogRecord:
            record = previous(*args, **kwargs)
            _scrub_record(record)
            return record

        logging.setLogRecordFactory(factory)
        _installed = True


def _scrub_record(record: logging.LogRecord) -> None:
    secrets = sorted({s for r in list(_redactors) for s in r.secrets()}, key=len, reverse=True)
    if not secrets:
        return
    try:
        message = record.getMessage()
    except Exception:  # a bad format string: logging reports it itself when the record is emitted
        return
    if record.exc_info and not record.exc_text:  # formatted now, so the traceback text can be masked too
        record.exc_text = logging.Formatter().formatException(record.exc_info)
    texts = [message, record.exc_text or "", record.stack_info or ""]
    if not any(secret in text for secret in secrets for text in texts):
        return
    for secret in secrets:
        message = message.replace(secret, MASK)
        record.exc_text = record.exc_text.replace(secret, MASK) if record.exc_text else record.exc_text
        record.stack_info = record.stack_info.replace(secret, MASK) if record.stack_info else record.stack_info
    record.msg, record.args = message, None
