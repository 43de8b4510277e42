"""The import directions of ``house_style.md``, checked on the source (static) and in a fresh interpreter (dynamic).

- ``unipixel_model`` is the model: it never imports ``backend``, ``finetune``, Flask, rq or Label Studio.
- ``backend.converters`` are pure: importing every converter loads no torch (nor the model code behind it).
- ``finetune`` uses the model, the converters and the server-free parts of ``backend`` (media fetching, the LS
  client, versions, the label-config parser, errors, task data), never the Flask server nor the server's settings:
  it reads the environment in ``finetune.settings``.
- The server-free parts of ``backend`` import no Flask and no server module themselves.

Each rule fails when a forbidden import appears (shown in the closing note of issue 11 on a scratch commit).
"""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).parents[2]
SERVER_FREE = {"backend.media", "backend.media_cache", "backend.ls_client", "backend.versions", "backend.label_config",
               "backend.errors", "backend.task_data", "backend.modes", "backend.converters"}
MODEL_FORBIDDEN = ("backend", "finetune", "flask", "rq", "redis", "label_studio_sdk", "label_studio")


def _imports(path: Path) -> set[str]:
    """Every module a file imports (absolute names; relative imports are not used in this project)."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def _files(package: str) -> list[Path]:
    return sorted((REPO / package).rglob("*.py"))


def _within(name: str, roots) -> bool:
    return any(name == root or name.startswith(root + ".") for root in roots)


def _violations(package: str, allowed) -> list[str]:
    return [f"{path.relative_to(REPO)} imports {name}" for path in _files(package) for name in sorted(_imports(path))
            if not allowed(name)]


def test_the_model_never_imports_the_server_the_trainer_or_label_studio():
    assert _violations("unipixel_model", lambda name: not _within(name, MODEL_FORBIDDEN)) == []


def test_finetune_imports_only_the_server_free_parts_of_backend():
    def allowed(name: str) -> bool:
        if _within(name, ("flask", "werkzeug")):
            return False
        # "from backend.converters import rle" names backend.converters.rle; a module is allowed when it or its
        # package is server-free
        return not name.startswith("backend") or name == "backend" or any(_within(name, (m,)) for m in SERVER_FREE)

    assert _violations("finetune", allowed) == []


@pytest.mark.parametrize("module", sorted(SERVER_FREE - {"backend.converters"}))
def test_server_free_backend_modules_import_no_server(module):
    path = REPO / (module.replace(".", "/") + ".py")
    bad = [n for n in _imports(path) if _within(n, ("flask", "werkzeug", "rq"))
           or (n.startswith("backend.") and not any(_within(n, (m,)) for m in SERVER_FREE))]
    assert bad == [], f"{module} imports {bad}"


def test_converters_load_no_torch_in_a_fresh_interpreter():
    modules = sorted(f"backend.converters.{p.stem}" for p in (REPO / "backend/converters").glob("*.py")
                     if p.stem != "__init__")
    code = ("import importlib, json, sys\n"
            f"for m in {modules!r}: importlib.import_module(m)\n"
            "print(json.dumps(sorted(n for n in sys.modules if n.split('.')[0] in "
            "('torch', 'transformers', 'sam2', 'peft', 'flask', 'unipixel_model'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=120,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    # the one model module converters may import: the torch-free typed prompts (and the package's empty __init__)
    assert set(loaded) <= {"unipixel_model", "unipixel_model.prompts"}, loaded


# Reading Label Studio regions (percent boxes, brush RLE, keyframes) is the job of one module; anything else that
# decodes them is a second parser whose rules will drift (issue 11: prompts.py and finetune/convert.py did).
REGION_DECODERS = ("ls_rle_to_mask", "decode_ls_rle", "rect_pct_to_box_px", "rotated_rect_pct_to_box_px")
PARSER = "backend/converters/annotation.py"
DECODER_HOMES = {"backend/converters/rle.py", "backend/converters/geometry.py"}  # where they are defined


def test_one_label_studio_region_parser():
    users = sorted(f"{path.relative_to(REPO)} calls {node.id if isinstance(node, ast.Name) else node.attr}"
                   for package in ("backend", "finetune", "unipixel_model") for path in _files(package)
                   if str(path.relative_to(REPO)) not in DECODER_HOMES | {PARSER}
                   for node in ast.walk(ast.parse(path.read_text()))
                   if isinstance(node, (ast.Name, ast.Attribute))
                   and (node.id if isinstance(node, ast.Name) else node.attr) in REGION_DECODERS)
    assert users == [], f"only {PARSER} reads Label Studio regions; use parse_result there: {users}"


def test_finetune_loads_no_server_module_in_a_fresh_interpreter():
    """What the worker process really loads: every finetune module, and nothing of the server comes with it
    (a static check misses an import that a server-free module makes on finetune's behalf)."""
    code = ("import importlib, json, pathlib, sys\n"
            "for p in sorted(pathlib.Path('finetune').rglob('*.py')):\n"
            "    if p.stem != '__main__': importlib.import_module('.'.join(p.with_suffix('').parts))\n"
            "print(json.dumps(sorted(n for n in sys.modules if n.split('.')[0] in ('backend', 'flask', 'werkzeug'))))")
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300,
                         env={"PYTHONPATH": str(REPO), "PATH": "/usr/bin:/bin", "HF_HUB_OFFLINE": "1"})
    assert out.returncode == 0, out.stderr
    loaded = json.loads(out.stdout.strip().splitlines()[-1])
    server = [m for m in loaded if m != "backend" and not any(_within(m, (free,)) for free in SERVER_FREE)]
    assert server == [], f"importing finetune loads server modules: {server}"


# Test and benchmark media are written by one module; a second encoder drifts (codec, pixel format, frame names).
MEDIA_WRITER = "finetune/world/writers.py"


def _encodes_media(node: ast.AST) -> bool:
    """``Image.fromarray(..).save``/``Image.new(..).save``, ``cv2.VideoWriter``/``cv2.imwrite``, ``av.open(.., "w")``."""
    if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
        return False
    func = node.func
    if func.attr == "save" and isinstance(func.value, ast.Call) and isinstance(func.value.func, ast.Attribute):
        return func.value.func.attr in ("fromarray", "new")
    if func.attr in ("VideoWriter", "imwrite"):
        return True
    modes = [a.value for a in node.args[1:] if isinstance(a, ast.Constant)]
    modes += [k.value.value for k in node.keywords if k.arg == "mode" and isinstance(k.value, ast.Constant)]
    return func.attr == "open" and isinstance(func.value, ast.Name) and func.value.id == "av" and "w" in modes


def test_one_writer_of_synthetic_media_for_tests_and_benchmarks():
    found = sorted(f"{path.relative_to(REPO)}:{node.lineno}" for package in ("tests", "benchmarks", "finetune/world")
                   for path in _files(package) if str(path.relative_to(REPO)) != MEDIA_WRITER
                   for node in ast.walk(ast.parse(path.read_text())) if _encodes_media(node))
    assert found == [], f"write test media with {MEDIA_WRITER}: {found}"


# The inference session's state is its own: callers use what its calls return and its read methods (``track``,
# ``has``, ``object_ids``, ``new_object_id``, ``deadline``, ``incomplete``), never its attributes.
SESSION_INTERNALS = ("objects", "pending", "track_deadline", "features", "model")


def test_the_backend_never_reads_or_writes_session_internals():
    found = sorted(f"{path.relative_to(REPO)}:{node.lineno} .session.{node.attr}"
                   for package in ("backend", "finetune") for path in _files(package)
                   for node in ast.walk(ast.parse(path.read_text()))
                   if isinstance(node, ast.Attribute) and node.attr in SESSION_INTERNALS
                   and isinstance(node.value, ast.Attribute) and node.value.attr == "session")
    assert found == [], f"use the session's methods and returned results: {found}"
