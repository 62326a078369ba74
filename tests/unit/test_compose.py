"""docker-compose.yml and the Dockerfile: valid, and what a user relies on.

No Docker engine runs here, so the files are checked, not run (the commands
themselves run in ``tests/system/test_compose_commands.py``). Every check is
a function that the real files pass and a mutated copy fails, so that none
of them passes vacuously.
"""

from __future__ import annotations

import copy
import fnmatch
import functools
import glob
import json
import os
import re
import shlex
import tomllib
from collections.abc import Callable
from typing import Any

import jsonschema
import pytest
from ruamel.yaml import YAML

import celeryconfig
from enrgdaq.constants import DAQ_JOB_STOP_GRACE_SECONDS, SUPERVISOR_QUEUE
from enrgdaq.local.stack import worker_command

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COMPOSE_PATH = os.path.join(REPO, "docker-compose.yml")
DOCKERFILE_PATH = os.path.join(REPO, "Dockerfile")
DOCKERIGNORE_PATH = os.path.join(REPO, ".dockerignore")

RUN_DIR = "/dev/shm/enrgdaq"
CELERY = ["celery", "-A", "enrgdaq"]
WORKER_QUEUES = {
    "worker-default": "default",
    "worker-store": "store",
    "worker-caen": "caen",
    "worker-camera": "camera",
    "worker-sensors": "sensors",
}

Doc = dict[str, Any]


# -- loading ---------------------------------------------------------------------------------
def load_compose(text: str | None = None) -> Doc:
    """The compose file as plain data: anchors and merge keys resolved, nothing shared."""
    if text is None:
        with open(COMPOSE_PATH) as f:
            text = f.read()
    data = YAML(typ="safe", pure=True).load(text)
    # A JSON round trip gives every service its own copy of what an anchor shared.
    return json.loads(json.dumps(data))


def compose_schema() -> dict[str, Any]:
    import check_jsonschema

    path = os.path.join(
        os.path.dirname(check_jsonschema.__file__), "builtin_schemas", "vendor", "compose-spec.json"
    )
    with open(path) as f:
        return json.load(f)


def read_dockerfile() -> str:
    with open(DOCKERFILE_PATH) as f:
        return f.read()


# -- helpers ---------------------------------------------------------------------------------
def argv(service: Doc) -> list[str]:
    command = service.get("command")
    assert command, "no command"
    return shlex.split(command) if isinstance(command, str) else [str(c) for c in command]


def python_services(doc: Doc) -> dict[str, Doc]:
    """Services built from this repository's Dockerfile."""
    return {name: svc for name, svc in doc["services"].items() if "build" in svc}


def node_services(doc: Doc) -> dict[str, Doc]:
    """Celery workers and beat: the processes that share the run dir (not Flower)."""
    return {
        name: svc for name, svc in python_services(doc).items() if argv(svc)[3:4] in (["worker"], ["beat"])
    }


def worker_services(doc: Doc) -> dict[str, Doc]:
    return {name: svc for name, svc in python_services(doc).items() if argv(svc)[3:4] == ["worker"]}


def option(args: list[str], *names: str) -> str | None:
    """The value of ``-Q x`` / ``--queues=x`` style options."""
    for i, arg in enumerate(args):
        if arg in names and i + 1 < len(args):
            return args[i + 1]
        for name in names:
            if name.startswith("--") and arg.startswith(name + "="):
                return arg.split("=", 1)[1]
    return None


def mounts(service: Doc) -> dict[str, tuple[str, bool]]:
    """Mount target -> (source, read_only), for short and long volume syntax."""
    found = {}
    for entry in service.get("volumes", []):
        if isinstance(entry, str):
            parts = entry.split(":")
            source, target = (parts[0], parts[1]) if len(parts) > 1 else ("", parts[0])
            read_only = len(parts) > 2 and "ro" in parts[2].split(",")
        else:
            source, target = entry.get("source", ""), entry["target"]
            read_only = bool(entry.get("read_only", False))
        found[target] = (source, read_only)
    return found


def published(service: Doc) -> list[tuple[str, str, str]]:
    """(host ip, host port, container port) of each published port."""
    found = []
    for entry in service.get("ports", []):
        if isinstance(entry, dict):
            found.append(
                (str(entry.get("host_ip", "")), str(entry.get("published", "")), str(entry["target"]))
            )
            continue
        parts = str(entry).split("/")[0].rsplit(":", 2)
        if len(parts) == 1:
            found.append(("", "", parts[0]))
        elif len(parts) == 2:
            found.append(("", parts[0], parts[1]))
        else:
            found.append((parts[0], parts[1], parts[2]))
    return found


def environment(service: Doc) -> dict[str, str]:
    env = service.get("environment", {})
    if isinstance(env, list):
        return dict(item.split("=", 1) if "=" in item else (item, "") for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


DURATION = re.compile(r"(\d+(?:\.\d+)?)(us|ms|s|m|h)")
UNIT_SECONDS = {"us": 1e-6, "ms": 1e-3, "s": 1.0, "m": 60.0, "h": 3600.0}


def duration_seconds(text: str) -> float:
    """A compose duration (``30s``, ``1m30s``)."""
    assert DURATION.sub("", text) == "", f"not a duration: {text!r}"
    return sum(float(n) * UNIT_SECONDS[u] for n, u in DURATION.findall(text))


def workdir() -> str:
    dirs = [args for name, args in dockerfile_instructions(read_dockerfile()) if name == "WORKDIR"]
    assert dirs, "the Dockerfile sets no WORKDIR"
    return dirs[-1]


# -- the compose checks ------------------------------------------------------------------------
@functools.cache
def compose_validator() -> jsonschema.protocols.Validator:
    """The validator of the draft that the schema names (2020-12), for the schema checked first."""
    schema = compose_schema()
    validator_class = jsonschema.validators.validator_for(schema)
    assert validator_class is jsonschema.Draft202012Validator, schema.get("$schema")
    validator_class.check_schema(schema)
    return validator_class(schema)


def check_schema(doc: Doc) -> None:
    errors = sorted(compose_validator().iter_errors(doc), key=lambda e: list(e.absolute_path))
    assert not errors, "\n".join(f"{list(e.absolute_path)}: {e.message}" for e in errors)


def check_services_exist(doc: Doc) -> None:
    expected = {"redis", "supervisor", "beat", "flower", "api", *WORKER_QUEUES}
    assert expected <= set(doc["services"]), expected - set(doc["services"])
    assert set(python_services(doc)) == expected - {"redis"}


def check_redis(doc: Doc) -> None:
    redis = doc["services"]["redis"]
    assert str(redis["image"]).startswith("redis:7")
    args = argv(redis)
    assert args[0] == "redis-server"
    assert option(args, "--appendonly") == "yes", args
    assert option(args, "--maxmemory-policy") == "noeviction", args
    assert "healthcheck" in redis, "redis has no healthcheck: service_healthy would never come"
    test = redis["healthcheck"]["test"]
    test = shlex.split(test) if isinstance(test, str) else test
    assert test[0] in ("CMD", "CMD-SHELL"), test
    assert "redis-cli" in " ".join(test) and "ping" in test[-1], test
    source, _ = mounts(redis)["/data"]
    assert source in doc.get("volumes", {}), f"redis /data is not a named volume: {source!r}"
    assert not redis.get("ports"), "redis must not be published"


def check_celery_commands(doc: Doc) -> None:
    for name, svc in python_services(doc).items():
        if name != "api":  # `enrgdaq api`: check_api
            assert argv(svc)[:3] == CELERY, f"{name}: {svc.get('command')!r}"
    assert argv(doc["services"]["beat"])[3] == "beat"
    assert argv(doc["services"]["flower"])[3] == "flower"


def check_supervisor(doc: Doc) -> None:
    args = argv(doc["services"]["supervisor"])
    assert args[3] == "worker"
    assert option(args, "-Q", "--queues") == SUPERVISOR_QUEUE, args
    assert option(args, "-c", "--concurrency") == "1", args
    # The same command line as `enrgdaq up`'s documented worker command.
    assert args == worker_command(SUPERVISOR_QUEUE, 1), args


def check_worker_queues(doc: Doc) -> None:
    for name, queue in WORKER_QUEUES.items():
        args = argv(doc["services"][name])
        assert option(args, "-Q", "--queues") == queue, f"{name}: {args}"
        concurrency = option(args, "-c", "--concurrency")
        assert concurrency is not None and int(concurrency) >= 2, f"{name}: {args}"
        assert args == worker_command(queue, int(concurrency)), f"{name}: {args}"
    queues = [option(argv(svc), "-Q", "--queues") for svc in worker_services(doc).values()]
    assert len(queues) == len(set(queues)), f"two workers consume the same queue: {queues}"


def check_shared_run_dir(doc: Doc) -> None:
    sources = {name: mounts(svc).get(RUN_DIR, ("", False))[0] for name, svc in node_services(doc).items()}
    assert {"supervisor", "beat", *WORKER_QUEUES} <= set(sources)
    missing = [name for name, source in sources.items() if not source]
    assert not missing, f"not mounted at {RUN_DIR}: {missing}"
    assert len(set(sources.values())) == 1, f"different volumes at {RUN_DIR}: {sources}"
    volume = doc["volumes"][next(iter(sources.values()))]
    assert volume.get("driver", "local") == "local"
    assert volume["driver_opts"]["type"] == "tmpfs" and volume["driver_opts"]["device"] == "tmpfs"


def check_configs_and_output(doc: Doc) -> None:
    for name, svc in node_services(doc).items():
        env = environment(svc)
        config_dir = env.get("ENRGDAQ_CONFIG_DIR", "")
        source, read_only = mounts(svc).get(config_dir, ("", False))
        assert source == "./configs" and read_only, f"{name}: configs not mounted read-only at {config_dir!r}"
        assert "ENRGDAQ_RUN_DIR" not in env, f"{name}: the default run dir is the shared volume"
    # Where the example CSV store writes (out_dir, from WORKDIR) is a bind mount of its worker.
    for path in sorted(glob.glob(os.path.join(REPO, "configs", "*.toml"))):
        with open(path, "rb") as f:
            job = tomllib.load(f)
        if "out_dir" not in job:
            continue
        queue = job.get("queue", "store")
        [svc] = [s for s in worker_services(doc).values() if option(argv(s), "-Q", "--queues") == queue]
        out_dir = os.path.normpath(os.path.join(workdir(), job["out_dir"]))
        targets = [
            t
            for t, (src, ro) in mounts(svc).items()
            if src.startswith(".") and not ro and (out_dir + "/").startswith(t.rstrip("/") + "/")
        ]
        assert targets, (
            f"{os.path.basename(path)} writes to {out_dir}, which no bind mount of its worker holds"
        )


def check_depends_on_redis(doc: Doc) -> None:
    for name, svc in python_services(doc).items():
        depends = svc.get("depends_on")
        assert isinstance(depends, dict), f"{name}: depends_on must use the long syntax"
        assert depends.get("redis", {}).get("condition") == "service_healthy", f"{name}: {depends}"
        assert environment(svc).get("ENRGDAQ_REDIS_URL") == "redis://redis:6379/0", name


def check_shutdown(doc: Doc) -> None:
    needed = max(float(celeryconfig.worker_soft_shutdown_timeout), DAQ_JOB_STOP_GRACE_SECONDS)
    for name, svc in worker_services(doc).items():
        grace = duration_seconds(str(svc.get("stop_grace_period", "10s")))  # compose's default
        assert grace > needed, f"{name}: stop_grace_period {grace} s <= {needed} s"
    for name, svc in python_services(doc).items():
        assert svc.get("init") is True, f"{name}: init: true forwards signals and reaps children"
        assert svc.get("stop_signal", "SIGTERM") == "SIGTERM", f"{name}: SIGTERM is the warm shutdown"
        assert "REMAP_SIGTERM" not in environment(svc), f"{name}: do not remap SIGTERM"


def check_flower(doc: Doc) -> None:
    flower = doc["services"]["flower"]
    assert option(argv(flower), "--port") == "5555"
    assert published(flower) == [("127.0.0.1", "5555", "5555")], flower.get("ports")
    auth = environment(flower).get("FLOWER_BASIC_AUTH", "")
    assert re.fullmatch(r"\$\{FLOWER_BASIC_AUTH:\?[^}]*\}", auth), f"FLOWER_BASIC_AUTH={auth!r}"


def check_api(doc: Doc) -> None:
    """The REST API: the same `enrgdaq api` as `enrgdaq up` runs, published on loopback only,
    its token required from the environment, on the supervisor's run dir and writable configs."""
    api = doc["services"]["api"]
    assert argv(api)[:2] == ["enrgdaq", "api"], api.get("command")
    assert option(argv(api), "--port") == "8000"
    assert published(api) == [("127.0.0.1", "8000", "8000")], api.get("ports")
    token = environment(api).get("ENRGDAQ_API_TOKEN", "")
    assert re.fullmatch(r"\$\{ENRGDAQ_API_TOKEN:\?[^}]*\}", token), f"ENRGDAQ_API_TOKEN={token!r}"
    supervisor_shm = mounts(doc["services"]["supervisor"])[RUN_DIR][0]
    assert mounts(api).get(RUN_DIR, ("", False))[0] == supervisor_shm, "api does not reach the proxy"
    assert mounts(api).get(environment(api)["ENRGDAQ_CONFIG_DIR"]) == ("./configs", False)


def check_nothing_public(doc: Doc) -> None:
    for name, svc in doc["services"].items():
        for host_ip, host_port, target in published(svc):
            assert host_ip == "127.0.0.1", f"{name} publishes {host_port or target} beyond loopback"
            assert target != "6379" and host_port != "6379", f"{name} publishes redis"
        assert svc.get("network_mode") != "host", name


COMPOSE_CHECKS: list[Callable[[Doc], None]] = [
    check_schema,
    check_services_exist,
    check_redis,
    check_celery_commands,
    check_supervisor,
    check_worker_queues,
    check_shared_run_dir,
    check_configs_and_output,
    check_depends_on_redis,
    check_shutdown,
    check_flower,
    check_api,
    check_nothing_public,
]


@pytest.fixture(scope="module")
def compose() -> Doc:
    return load_compose()


@pytest.mark.parametrize("check", COMPOSE_CHECKS, ids=lambda c: c.__name__)
def test_compose_file(compose: Doc, check: Callable[[Doc], None]) -> None:
    check(copy.deepcopy(compose))


def test_anchors_do_not_leak_between_services(compose: Doc) -> None:
    """Merge keys resolved as Compose does: each service has its own command."""
    commands = [svc.get("command") for svc in python_services(compose).values()]
    assert len(set(map(str, commands))) == len(commands)
    assert "x-enrgdaq-image" in compose  # extension fields are allowed at the top level


# -- every check can fail ------------------------------------------------------------------------
def _svc(doc: Doc, name: str) -> Doc:
    svc: Doc = doc["services"][name]
    return svc


def _set(name: str, key: str, value: Any) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        _svc(doc, name)[key] = value

    return mutate


def _drop(name: str, key: str) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        _svc(doc, name).pop(key, None)

    return mutate


def _replace_in_command(name: str, old: str, new: str) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        command = _svc(doc, name)["command"]
        text = command if isinstance(command, str) else shlex.join(command)
        assert old in text
        _svc(doc, name)["command"] = text.replace(old, new)

    return mutate


def _drop_volume(name: str, target: str) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        svc = _svc(doc, name)
        svc["volumes"] = [v for v in svc["volumes"] if v.split(":")[1] != target]

    return mutate


def _env(name: str, key: str, value: str | None) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        env = _svc(doc, name)["environment"]
        if value is None:
            env.pop(key)
        else:
            env[key] = value

    return mutate


def _top(key: str, value: Any) -> Callable[[Doc], None]:
    def mutate(doc: Doc) -> None:
        doc[key] = value

    return mutate


def _other_shm_volume(doc: Doc) -> None:
    doc["volumes"]["other-shm"] = copy.deepcopy(doc["volumes"]["enrgdaq-shm"])
    svc = _svc(doc, "worker-store")
    svc["volumes"] = [v.replace("enrgdaq-shm:", "other-shm:") for v in svc["volumes"]]


def _shm_not_tmpfs(doc: Doc) -> None:
    doc["volumes"]["enrgdaq-shm"]["driver_opts"]["type"] = "none"


def _configs_writable(doc: Doc) -> None:
    svc = _svc(doc, "worker-default")
    svc["volumes"] = [v.replace(":ro", "") for v in svc["volumes"]]


def _out_dir_not_mounted(doc: Doc) -> None:
    _drop_volume("worker-store", "/app/out")(doc)


MUTATIONS: list[tuple[str, Callable[[Doc], None], Callable[[Doc], None]]] = [
    ("unknown top-level key", _top("servicez", {}), check_schema),
    ("misspelt service key", _set("beat", "comand", "celery -A enrgdaq beat"), check_schema),
    ("ports not a list", _set("flower", "ports", "127.0.0.1:5555:5555"), check_schema),
    ("no worker-store", lambda d: d["services"].pop("worker-store"), check_services_exist),
    ("no appendonly", _replace_in_command("redis", "--appendonly yes ", ""), check_redis),
    ("evicting redis", _replace_in_command("redis", "noeviction", "allkeys-lru"), check_redis),
    ("no healthcheck", _drop("redis", "healthcheck"), check_redis),
    ("redis data not a named volume", _set("redis", "volumes", ["./redis:/data"]), check_redis),
    ("redis with ports", _set("redis", "ports", ["127.0.0.1:6379:6379"]), check_redis),
    (
        "not celery -A enrgdaq",
        _replace_in_command("beat", "celery -A enrgdaq", "celery -A other"),
        check_celery_commands,
    ),
    (
        "supervisor on another queue",
        _replace_in_command("supervisor", "-Q supervisor", "-Q default"),
        check_supervisor,
    ),
    ("two supervisor slots", _replace_in_command("supervisor", "-c 1", "-c 2"), check_supervisor),
    (
        "store worker on default",
        _replace_in_command("worker-store", "-Q store", "-Q default"),
        check_worker_queues,
    ),
    ("no node name", _replace_in_command("worker-caen", "-n caen@%h ", ""), check_worker_queues),
    ("beat without run dir", _drop_volume("beat", RUN_DIR), check_shared_run_dir),
    ("another volume at run dir", _other_shm_volume, check_shared_run_dir),
    ("run dir not tmpfs", _shm_not_tmpfs, check_shared_run_dir),
    ("configs writable", _configs_writable, check_configs_and_output),
    ("output not mounted", _out_dir_not_mounted, check_configs_and_output),
    ("short depends_on", _set("worker-default", "depends_on", ["redis"]), check_depends_on_redis),
    (
        "redis only started",
        _set("beat", "depends_on", {"redis": {"condition": "service_started"}}),
        check_depends_on_redis,
    ),
    ("short grace", _set("worker-store", "stop_grace_period", "5s"), check_shutdown),
    ("default grace", _drop("supervisor", "stop_grace_period"), check_shutdown),
    ("no init", _drop("worker-default", "init"), check_shutdown),
    ("remapped SIGTERM", _env("worker-default", "REMAP_SIGTERM", "SIGQUIT"), check_shutdown),
    ("flower on every interface", _set("flower", "ports", ["5555:5555"]), check_flower),
    ("flower password in the file", _env("flower", "FLOWER_BASIC_AUTH", "admin:admin"), check_flower),
    ("flower without auth", _env("flower", "FLOWER_BASIC_AUTH", None), check_flower),
    ("api on every interface", _set("api", "ports", ["8000:8000"]), check_api),
    ("api token in the file", _env("api", "ENRGDAQ_API_TOKEN", "not-a-secret-anymore"), check_api),
    ("api without its token", _env("api", "ENRGDAQ_API_TOKEN", None), check_api),
    ("api without the run dir", _drop_volume("api", RUN_DIR), check_api),
    (
        "redis published by another service",
        _set("beat", "ports", ["127.0.0.1:6379:6379"]),
        check_nothing_public,
    ),
    (
        "public port",
        _set("worker-caen", "ports", [{"target": 8000, "published": "8000"}]),
        check_nothing_public,
    ),
]


@pytest.mark.parametrize(("mutate", "check"), [m[1:] for m in MUTATIONS], ids=[m[0] for m in MUTATIONS])
def test_check_fails_on_mutated_compose(
    compose: Doc, mutate: Callable[[Doc], None], check: Callable[[Doc], None]
) -> None:
    doc = copy.deepcopy(compose)
    mutate(doc)
    assert doc != compose
    with pytest.raises(AssertionError):
        check(doc)


def test_compose_text_with_unknown_key_fails_schema() -> None:
    with open(COMPOSE_PATH) as f:
        text = f.read()
    with pytest.raises(AssertionError, match="servicez"):
        check_schema(load_compose(text + "\nservicez: {}\n"))


def test_duration_parser() -> None:
    assert duration_seconds("30s") == 30
    assert duration_seconds("1m30s") == 90
    assert duration_seconds("500ms") == 0.5
    with pytest.raises(AssertionError):
        duration_seconds("30 seconds")


# -- Dockerfile ---------------------------------------------------------------------------------
def dockerfile_instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    joined = re.sub(
        r"\\\n", " ", "\n".join(line for line in text.splitlines() if not line.lstrip().startswith("#"))
    )
    found = []
    for line in joined.splitlines():
        if line.strip():
            name, _, args = line.strip().partition(" ")
            found.append((name.upper(), " ".join(args.split())))
    return found


def dockerignore_patterns() -> list[str]:
    with open(DOCKERIGNORE_PATH) as f:
        return [line.strip().rstrip("/") for line in f if line.strip() and not line.startswith("#")]


def check_dockerfile(text: str) -> None:
    steps = dockerfile_instructions(text)
    names = [name for name, _ in steps]
    assert steps[0] == ("FROM", "python:3.11-slim"), steps[0]
    assert ("WORKDIR", "/app") in steps
    # The package and its sources are copied before the install, and nothing excluded is copied.
    pip_install = re.compile(r"pip install --no-cache-dir \"?\.\[flower\]\"?")
    install = next(i for i, (name, args) in enumerate(steps) if name == "RUN" and pip_install.search(args))
    copied = [src for name, args in steps[:install] if name == "COPY" for src in args.split()[:-1]]
    for needed in ("pyproject.toml", "celeryconfig.py", "enrgdaq/", "configs/"):
        assert needed in copied, f"{needed} is not copied before the install"
    ignored = dockerignore_patterns()
    for src in copied:
        matches = glob.glob(os.path.join(REPO, src))
        assert matches or glob.has_magic(src), f"COPY {src}: no such file"
        assert not any(fnmatch.fnmatch(src.rstrip("/"), p) for p in ignored), f"{src} is in .dockerignore"
    # A non-root user, set after the install; the default command is a celery worker.
    users = [i for i, name in enumerate(names) if name == "USER"]
    assert users and users[-1] > install, "no USER after the install"
    assert steps[users[-1]][1].split(":")[0] not in ("root", "0")
    cmds = [args for name, args in steps if name == "CMD"]
    assert cmds, "no CMD"
    cmd = json.loads(cmds[-1])  # exec form: signals reach celery, not a shell
    assert cmd[:4] == [*CELERY, "worker"], cmd


def test_dockerfile() -> None:
    check_dockerfile(read_dockerfile())


CMD = 'CMD ["celery", "-A", "enrgdaq", "worker", "-Q", "default"]'


@pytest.mark.parametrize(
    ("old", "new"),
    [
        ("FROM python:3.11-slim", "FROM python:3.12"),
        ('".[flower]"', '"enrgdaq"'),
        ("COPY enrgdaq/ enrgdaq/\n", ""),
        ("USER enrgdaq", "USER root"),
        ("USER enrgdaq", ""),
        (CMD, "CMD celery -A enrgdaq worker"),
        (CMD, 'CMD ["celery", "-A", "enrgdaq", "beat"]'),
        ("COPY configs/ configs/", "COPY configz/ configs/"),
    ],
)
def test_dockerfile_check_fails_on_mutation(old: str, new: str) -> None:
    text = read_dockerfile()
    assert old in text
    with pytest.raises((AssertionError, StopIteration, ValueError)):
        check_dockerfile(text.replace(old, new))


def test_image_user_owns_the_shared_volume(compose: Doc) -> None:
    uid = re.search(r"useradd\b[^\n]*--uid (\d+)", read_dockerfile())
    assert uid, "the Dockerfile creates no user with a fixed uid"
    o = compose["volumes"]["enrgdaq-shm"]["driver_opts"]["o"]
    opts = dict(item.split("=", 1) for item in o.split(","))
    assert opts.get("uid") == uid.group(1), opts


def test_dockerignore() -> None:
    ignored = dockerignore_patterns()
    for pattern in ("out", ".enrgdaq", "tests", ".git", ".env"):
        assert pattern in ignored, pattern
    assert any("__pycache__" in p for p in ignored)
