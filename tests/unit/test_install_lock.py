"""Both venvs are installed from a lock (``scripts/constraints*.txt``), so a new release on PyPI cannot change them.

Label Studio 1.23.2 pins few of its dependencies: when sentry-sdk 3.0.0 came out, a fresh ``venv-ls`` got it, and
Label Studio no longer started (``TypeError: Unknown option 'send_default_pii'``), failing every e2e test on CI.
These tests check that the lock files are complete and that the venvs hold exactly what they lock.
"""

import importlib.metadata as md
import json
import re
import subprocess
from pathlib import Path

import pytest

from tests.services import ls_venv

REPO = Path(__file__).resolve().parents[2]
PIN = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==([^\s;#]+)$")
# Pinned by requirements.txt / scripts/install.sh themselves, with a local version label that differs per machine.
NOT_LOCKED = {"torch", "torchvision", "sam2", "pip", "setuptools", "wheel"}


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _lock(name: str) -> dict[str, str]:
    """``{canonical name: version}`` of a constraints file; every non-comment line must be a ``name==version`` pin."""
    pins = {}
    for line in (REPO / "scripts" / name).read_text().splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        match = PIN.match(line)
        assert match, f"scripts/{name}: {line!r} is not a `name==version` pin"
        pins[_canonical(match[1])] = match[2]
    return pins


def _differences(lock: dict[str, str], installed: dict[str, str]) -> list[str]:
    """Each package whose installed version is not the locked one, or that is installed but not locked."""
    out = [f"{n}: locked {v}, installed {installed.get(n, 'nothing')}"
           for n, v in lock.items() if installed.get(n) != v]
    out += [f"{n} {v} is installed but not in the lock" for n, v in installed.items() if n not in lock]
    return sorted(out)


def test_the_label_studio_venv_holds_exactly_its_lock():
    lock = _lock("constraints-label-studio.txt")
    assert lock["label-studio"] == "1.23.2"
    assert lock["sentry-sdk"].startswith("2."), "Label Studio 1.23.2 does not start with sentry-sdk 3"
    python = ls_venv() / "bin" / "python"
    if not python.exists():
        pytest.fail(f"{python} is missing: run `bash scripts/install_services.sh`")
    listing = ("import importlib.metadata as md, json; "
               "print(json.dumps({d.name: d.version for d in md.distributions()}))")
    out = subprocess.run([str(python), "-c", listing], capture_output=True, text=True, check=True, timeout=120).stdout
    installed = {_canonical(n): v for n, v in json.loads(out).items() if _canonical(n) not in NOT_LOCKED}
    assert _differences(lock, installed) == []


def test_the_model_venv_holds_exactly_its_lock_and_the_lock_agrees_with_requirements():
    lock = _lock("constraints.txt")
    assert not NOT_LOCKED & set(lock), "torch, torchvision and sam2 are pinned by requirements.txt / install.sh"
    installed = {_canonical(d.name): d.version for d in md.distributions() if _canonical(d.name) not in NOT_LOCKED}
    assert _differences(lock, installed) == []
    for line in (REPO / "requirements.txt").read_text().splitlines():
        match = PIN.match(line.strip())
        if match and _canonical(match[1]) not in NOT_LOCKED:
            assert lock[_canonical(match[1])] == match[2], f"requirements.txt and the lock differ on {line}"
