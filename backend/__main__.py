"""``python -m backend serve [--host H] [--port P]`` and ``python -m backend frames VIDEO --out DIR``."""

from __future__ import annotations

import argparse
import logging
import sys

from backend.frames import add_frames_parser, run_frames
from backend.settings import Settings, SettingsError


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m backend", description="UniPixel Label Studio ML backend")
    sub = parser.add_subparsers(dest="command", required=True)
    serve = sub.add_parser("serve", help="serve the Label Studio ML protocol (threaded, one model per process)")
    serve.add_argument("--host", default="0.0.0.0", help="interface to bind (default 0.0.0.0)")
    serve.add_argument("--port", type=int, default=None, help="port (default $PORT or 9090)")
    serve.add_argument("--preload", action="store_true", help="load the model before accepting requests")
    add_frames_parser(sub)
    args = parser.parse_args(argv)
    if args.command == "frames":
        return run_frames(args)
    try:
        settings = Settings.from_env()
    except SettingsError as err:
        print(f"configuration error: {err}", file=sys.stderr)
        return 2
    return _serve(settings, args)


def _serve(settings: Settings, args: argparse.Namespace) -> int:
    """gunicorn with one worker (one model copy) and ``THREADS`` request threads."""
    from gunicorn.app.base import BaseApplication

    from backend import gunicorn_conf
    from backend.api import create_app

    logging.basicConfig(level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app(settings)
    if args.preload:
        with app.config["engine"].gpu:
            app.config["engine"].model()
    port = args.port or settings.port

    class _Server(BaseApplication):
        def load_config(self):
            ours = {k: v for k, v in vars(gunicorn_conf).items() if k in self.cfg.settings}  # as `-c` reads it
            for key, value in {**ours, "bind": f"{args.host}:{port}", "workers": 1, "threads": settings.threads,
                               "timeout": 0, "loglevel": settings.log_level.lower()}.items():
                self.cfg.set(key, value)

        def load(self):
            return app

    logging.getLogger("backend").info("serving on http://%s:%d (model %s)", args.host, port, settings.model)
    _Server().run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
