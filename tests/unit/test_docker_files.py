"""Static checks of docker/ (Docker is not available on CI, so `docker compose config` cannot run).

The compose files are parsed with pyyaml and checked against the basics of the compose spec and against what the
backend needs: Label Studio's 1.23 security flags, the models and data volumes and Redis shared by backend and worker,
every setting passable from docker/.env, every ``${VAR}`` defaulted or documented in docker/.env.example, and
Dockerfiles that serve ``backend._wsgi:app`` and make the volumes' folders for their user.
"""

import re
from pathlib import Path

import pytest
import yaml

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"
COMPOSE = DOCKER / "docker-compose.yml"
COMPOSE_CPU = DOCKER / "docker-compose.cpu.yml"
DOCKERFILES = [DOCKER / "Dockerfile.gpu", DOCKER / "Dockerfile.cpu"]
# ${NAME}, ${NAME:-default}, ${NAME-default}, ${NAME:?error}, ${NAME?error}, ${NAME:+alt}
VAR_RE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?+])[^}]*)?\}")
# Where compose puts the backend's and the worker's state: on named volumes, so that a recreated container keeps it.
STATE_DIRS = {"MODEL_DIR": "models", "UNIPIXEL_DATA_DIR": "unipixel-data"}
# Settings compose sets itself (paths inside the image, service names), so docker/.env cannot move them.
FIXED_BY_COMPOSE = {"MODEL_DIR", "UNIPIXEL_DATA_DIR", "UNIPIXEL_MEDIA_CACHE_DIR", "LABEL_STUDIO_URL", "REDIS_URL",
                    "PORT"}


def _setting_names():
    """Every environment name ``backend.settings.Settings`` reads (the worker's are a subset), as alias tuples."""
    from backend.settings import Settings

    return [keys for keys, _ in Settings.ENV.values()]


class _ComposeLoader(yaml.SafeLoader):
    """SafeLoader that accepts compose's merge tags (``!reset``, ``!override``) and keeps them visible."""


class Reset:
    def __init__(self, value):
        self.value = value


def _tagged(loader, node):
    if isinstance(node, yaml.MappingNode):
        return Reset(loader.construct_mapping(node))
    if isinstance(node, yaml.SequenceNode):
        return Reset(loader.construct_sequence(node))
    return Reset(loader.construct_scalar(node))


_ComposeLoader.add_constructor("!reset", _tagged)
_ComposeLoader.add_constructor("!override", _tagged)


def _load(path):
    return yaml.load(path.read_text(), Loader=_ComposeLoader)


@pytest.fixture(scope="module")
def compose():
    return _load(COMPOSE)


@pytest.fixture(scope="module")
def compose_cpu():
    return _load(COMPOSE_CPU)


def _env_example():
    names = {}
    for line in (DOCKER / ".env.example").read_text().splitlines():
        if line.strip() and not line.lstrip().startswith("#"):
            name, _, value = line.partition("=")
            names[name.strip()] = value
    return names


def _requirement_pin(package):
    for line in (REPO / "requirements.txt").read_text().splitlines():
        if line.startswith(f"{package}=="):
            return line.split("==", 1)[1].strip()
    raise AssertionError(f"{package} is not pinned in requirements.txt")


@pytest.mark.parametrize("path", [COMPOSE, COMPOSE_CPU], ids=lambda p: p.name)
def test_compose_top_level_keys_are_services_and_volumes_only(path):
    doc = _load(path)
    assert set(doc) <= {"services", "volumes"}, f"{path.name}: unexpected top-level keys {set(doc) - {'services', 'volumes'}}"
    assert isinstance(doc["services"], dict) and doc["services"]


def test_compose_declares_the_four_services(compose):
    assert {"label-studio", "backend", "worker", "redis"} <= set(compose["services"])
    for name, service in compose["services"].items():
        assert "image" in service or "build" in service, f"service {name} has neither image nor build"


@pytest.mark.parametrize("path", [COMPOSE, COMPOSE_CPU], ids=lambda p: p.name)
def test_compose_ports_and_environment_values_are_strings(path):
    """Unquoted `8080:8080` can parse as a base-60 int and `false` as a bool: compose rejects or misreads both."""
    for name, service in _load(path)["services"].items():
        for port in service.get("ports", []):
            assert isinstance(port, str), f"{path.name}: {name} port {port!r} must be a quoted string"
        env = service.get("environment", {})
        assert isinstance(env, dict), f"{path.name}: {name} environment must be a mapping"
        for key, value in env.items():
            assert isinstance(value, str), f"{path.name}: {name} {key}={value!r} must be a quoted string"


def test_compose_label_studio_allows_local_backends_and_legacy_tokens(compose):
    ls = compose["services"]["label-studio"]
    assert ls["image"] == "heartexlabs/label-studio:1.23.2"
    assert any(port.endswith(":8080") for port in ls["ports"])
    env = ls["environment"]
    assert env["ML_BLOCK_LOCAL_IP"] == "false"
    assert env["SSRF_PROTECTION_ENABLED"] == "false"
    assert env["LABEL_STUDIO_ENABLE_LEGACY_API_TOKEN"] == "true"
    assert any(v.endswith(":/label-studio/data") for v in ls["volumes"]), "LS data must live on a volume"


def test_compose_backend_and_worker_share_models_volume_and_redis(compose):
    backend, worker = compose["services"]["backend"], compose["services"]["worker"]
    for service in (backend, worker):
        env = service["environment"]
        assert f"models:{env['MODEL_DIR']}" in service["volumes"]
        assert env["REDIS_URL"] == "redis://redis:6379/0"
        assert env["LABEL_STUDIO_URL"] == "http://label-studio:8080"
    assert "models" in compose["volumes"]
    assert worker["command"] == ["python", "-m", "finetune", "worker"]
    assert backend["ports"] == ["${BACKEND_PORT:-9090}:9090"]


def test_compose_backend_environment_passes_every_setting_from_docker_env(compose):
    """Every variable of README's configuration table reaches the backend and the worker: an operator sets it in
    docker/.env. Passed as ``${NAME:-}``, an unset one is empty and the settings' own default applies, so compose
    repeats no default. Unknown names would be silently ignored by the backend, so there are none."""
    env = compose["services"]["backend"]["environment"]
    known = {name for keys in _setting_names() for name in keys} | {"HF_HOME"}
    assert set(env) <= known, f"names no setting reads: {set(env) - known}"
    for keys in _setting_names():
        present = [name for name in keys if name in env]
        assert present, f"{keys[0]} cannot be set through docker/.env: add it to the backend's environment"
        if present[0] not in FIXED_BY_COMPOSE | {"UNIPIXEL_MODEL", "DEVICE", "UNIPIXEL_SAM2_IMAGE_SIZE", "THREADS",
                                                 "LOG_LEVEL", "LABEL_STUDIO_API_KEY"}:
            assert env[present[0]] == f"${{{present[0]}:-}}", f"{present[0]}: pass it as ${{{present[0]}:-}}"


def test_compose_backend_and_worker_keep_their_state_on_shared_volumes(compose):
    """The backend appends webhook events and unfinished tracks under UNIPIXEL_DATA_DIR; the worker reads those events
    when Label Studio is down, and keeps the label record and its media cache there. Both must see one folder, on a
    volume, or the events never reach the worker and a recreated container loses them."""
    backend, worker = compose["services"]["backend"], compose["services"]["worker"]
    for name, volume in STATE_DIRS.items():
        for service in (backend, worker):
            path = service["environment"][name]
            assert path.startswith("/"), f"{name}={path!r} must be absolute (the image's WORKDIR is not a volume)"
            assert f"{volume}:{path}" in service["volumes"], f"{name} must live on the {volume!r} volume"
        assert backend["environment"][name] == worker["environment"][name]
    cache = backend["environment"]["UNIPIXEL_MEDIA_CACHE_DIR"]
    assert any(mount.endswith(f":{cache}") for mount in backend["volumes"]), "the media cache must be on a volume"


@pytest.mark.parametrize("path", [COMPOSE, COMPOSE_CPU], ids=lambda p: p.name)
def test_compose_named_volumes_are_declared(path, compose):
    declared = set(compose.get("volumes") or {})
    for name, service in _load(path)["services"].items():
        for mount in service.get("volumes", []):
            source = mount.split(":", 1)[0]
            if not source.startswith((".", "/", "~", "$")):
                assert source in declared, f"{name} mounts undeclared volume {source!r}"


def test_compose_gpu_reserved_for_backend_and_worker_and_reset_on_cpu(compose, compose_cpu):
    for name in ("backend", "worker"):
        devices = compose["services"][name]["deploy"]["resources"]["reservations"]["devices"]
        assert devices[0]["driver"] == "nvidia" and "gpu" in devices[0]["capabilities"]
        cpu = compose_cpu["services"][name]
        assert isinstance(cpu["deploy"], Reset), f"docker-compose.cpu.yml must `!reset` {name}.deploy"
        assert cpu["build"]["dockerfile"].endswith("Dockerfile.cpu")
        assert cpu["environment"]["DEVICE"] == "cpu"


@pytest.mark.parametrize("path", [COMPOSE, COMPOSE_CPU], ids=lambda p: p.name)
def test_compose_build_dockerfiles_exist(path):
    builds = [s["build"] for s in _load(path)["services"].values() if "build" in s]
    assert builds
    for build in builds:
        context = (path.parent / build["context"]).resolve()
        assert context == REPO, f"build context {context} should be the repository root"
        assert (context / build["dockerfile"]).is_file(), f"{build['dockerfile']} does not exist"


def test_compose_variables_have_defaults_or_are_documented():
    documented = _env_example()
    used = set()
    for path in (COMPOSE, COMPOSE_CPU):
        for name, modifier in VAR_RE.findall(path.read_text()):
            used.add(name)
            if modifier not in (":-", "-"):
                assert name in documented, f"{path.name}: ${{{name}}} has no default and is not in docker/.env.example"
    assert set(documented) <= used, f"docker/.env.example documents unused variables {set(documented) - used}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_serves_wsgi_app_with_one_worker(dockerfile):
    text = dockerfile.read_text()
    cmd = [line for line in text.splitlines() if line.startswith("CMD ")]
    assert len(cmd) == 1 and "backend._wsgi:app" in cmd[0]
    assert "--workers 1" in cmd[0] and "--timeout 0" in cmd[0] and "${PORT:-9090}" in cmd[0]
    assert "-c python:backend.gunicorn_conf" in cmd[0], "without it a SIGTERM waits for every background track"
    for folder in ("backend/", "unipixel_model/", "finetune/", "label_config/"):
        assert re.search(rf"^COPY {folder} ", text, re.MULTILINE), f"{dockerfile.name} does not copy {folder}"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_installs_pinned_torch_first_then_requirements_then_sam2(dockerfile):
    text = dockerfile.read_text()
    torch_at = text.index(f'RUN pip install "torch=={_requirement_pin("torch")}"')
    assert f'"torchvision=={_requirement_pin("torchvision")}"' in text
    # -c: the image gets the same locked dependencies as scripts/install.sh gives the test venv
    requirements_at = text.index("RUN pip install -r requirements.txt -c constraints.txt")
    assert text.index("COPY scripts/constraints.txt ./") < requirements_at
    sam2_at = text.index('SAM2_BUILD_CUDA=0 pip install --no-build-isolation --no-deps "sam2==1.1.0"')
    assert torch_at < requirements_at < sam2_at
    if dockerfile.name == "Dockerfile.cpu":
        assert "--index-url https://download.pytorch.org/whl/cpu" in text


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_context_ignore_keeps_venvs_out(dockerfile):
    ignore = [line for line in Path(f"{dockerfile}.dockerignore").read_text().splitlines() if line[:1] not in "#"]
    assert ignore[0] == "*", "the ignore file must start from `*` and whitelist what the image copies"
    for path in re.findall(r"^COPY (\S+) ", dockerfile.read_text(), re.MULTILINE):
        assert f"!{path}" in ignore, f"{dockerfile.name} copies {path} but its .dockerignore excludes it"


@pytest.mark.parametrize("dockerfile", DOCKERFILES, ids=lambda p: p.name)
def test_dockerfile_makes_every_volume_folder_for_its_user(dockerfile, compose):
    """A new named volume takes the owner of the image's folder it is mounted on; a folder the image lacks comes up
    owned by root, and the unprivileged backend cannot write its versions, events or downloads there."""
    text = dockerfile.read_text()
    made = set(re.search(r"mkdir -p ([^&\n]+)", text).group(1).split())
    assert "chown -R unipixel:unipixel /data" in text and "USER unipixel" in text
    for name in ("backend", "worker"):
        for mount in compose["services"][name]["volumes"]:
            target = mount.split(":")[1]
            assert target in made, f"{dockerfile.name}: add {target} to the mkdir -p line ({name} mounts it)"


def test_compose_redis_keeps_the_training_queue_across_restarts(compose):
    """Redis holds the queued fine-tune runs (a *Start Training* waiting behind another project's run) and the event
    counts. Without persistence a restarted Redis container (a `docker compose up` after an .env change, a host
    reboot) dropped them, and the run the annotator asked for never came, with nothing said."""
    redis = compose["services"]["redis"]
    command = redis["command"]
    assert command[command.index("--appendonly") + 1] == "yes", command
    assert any(mount.split(":")[1] == "/data" for mount in redis.get("volumes", [])), "Redis writes to /data"
