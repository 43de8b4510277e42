"""gunicorn target: ``gunicorn -c python:backend.gunicorn_conf --workers 1 --threads 8 --timeout 0 backend._wsgi:app``
(the config module stops background work at once on SIGTERM).

One worker per GPU: every worker process holds its own copy of the model.
"""

from __future__ import annotations

import logging

from backend.api import create_app
from backend.settings import Settings

settings = Settings.from_env()
logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
app = create_app(settings)
