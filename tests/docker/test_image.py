"""The container deployment: docker/compose.yaml and docker/Dockerfile as written, and the image they build.

Fast tests (no Docker) read compose.yaml and the Dockerfile, check that the dashboard-only requirements
cover what the code imports, and run the health check script against a local HTTP server. The hand-off
between the dashboard and the trainer service itself (:mod:`trainer.handoff`) is tested in
tests/trainer/test_handoff.py.

The ``docker`` tests start a private dockerd, build the dashboard-only image (its C extensions compiled in a
builder stage on a base with gcc, the runtime on a base without) with no network during the build, and run
it as compose would: healthy, non-root, results mounted read-only, the overview served over HTTP, the C
extensions importable and no compiler left; then a second container of the same image acts as the trainer
service (``nnwatch worker``) and a training it runs outlives a restart of the dashboard container.
Skipped where dockerd, debootstrap or root are missing (scripts/test installs ``docker.io debootstrap``).
"""

from __future__ import annotations

import ast
import importlib.metadata
import json
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from conftest_trainer import wait_for
from docker_env import (
    BASE_TAG,
    BUILDER_TAG,
    CACHE,
    CONTAINER_UID,
    DOCKER_DIR,
    HANDOFF_SCRIPT,
    IMAGE_TAG,
    REPO,
    Bind,
    DockerDaemon,
    base_tarball,
    build_image,
    free_port,
    host_network_state,
    http_get,
    inspect_container,
    missing_requirements,
    new_scratch_folder,
    process_uid,
    remove_tree,
    run_container,
    stage_context,
    start_dockerd,
    timed,
    wait_healthy,
    wheelhouse,
)
from logwriters import v2_log, v2_run, write

from app.dashboard.jobs_source import load_backend_factory
from trainer.handoff import backend_factory
from trainer.runner import EXIT_FILE, process_identity

COMPOSE = DOCKER_DIR / "compose.yaml"
NNUNET_TARGETS = {"nnUNet_raw": "/data/nnUNet_raw", "nnUNet_preprocessed": "/data/nnUNet_preprocessed",
                  "nnUNet_results": "/data/nnUNet_results"}
STATE_TARGET = "/var/lib/nnwatch"


# -- compose.yaml -------------------------------------------------------------------------------------------
def load_compose() -> dict[str, Any]:
    """compose.yaml parsed with PyYAML (anchors resolved), or skip the structural checks without it."""
    yaml = pytest.importorskip("yaml", reason="PyYAML is not installed; compose.yaml is checked textually only")
    data = yaml.safe_load(COMPOSE.read_text())
    assert isinstance(data, dict)
    return data


def _volumes(service: dict[str, Any]) -> dict[str, dict[str, Any]]:
    volumes = {}
    for volume in service["volumes"]:
        assert isinstance(volume, dict) and volume["type"] == "bind", f"use the long bind syntax: {volume}"
        volumes[volume["target"]] = volume
    return volumes


def _gpu_devices(service: dict[str, Any]) -> list[dict[str, Any]]:
    return service["deploy"]["resources"]["reservations"]["devices"]


def test_compose_text_names_what_a_lab_needs() -> None:
    """Runs without PyYAML too: the keys an admin looks for are in the file."""
    text = COMPOSE.read_text()
    for needle in ("nnUNet_raw", "nnUNet_preprocessed", "nnUNet_results", "NNWATCH_JOBS_DB", "driver: nvidia",
                   "capabilities: [gpu]", "secrets:", "restart: unless-stopped", "healthcheck:", "read_only: true",
                   "NNWATCH_USERS_FILE: /run/secrets/"):
        assert needle in text, needle


def test_compose_dashboard_mounts_env_gpu_secret_restart_healthcheck() -> None:
    compose = load_compose()
    dashboard = compose["services"]["dashboard"]
    env = dashboard["environment"]
    volumes = _volumes(dashboard)
    for name, target in NNUNET_TARGETS.items():
        assert env[name] == target
        assert volumes[target]["read_only"] is True, f"the dashboard only reads {target}"
        assert volumes[target]["source"].startswith("${NNUNET_"), "host paths come from .env"
    assert volumes[STATE_TARGET].get("read_only", False) is False
    assert env["NNWATCH_JOBS_DB"].startswith(STATE_TARGET + "/")
    assert env["NNWATCH_VARIANTS_DIR"].startswith(STATE_TARGET + "/"), "variants must be shared with the trainer"
    assert env["NNWATCH_BACKEND_FACTORY"] == "trainer.handoff:backend_factory"
    assert load_backend_factory(env["NNWATCH_BACKEND_FACTORY"]) is backend_factory
    secret = dashboard["secrets"][0]
    secret_name = secret if isinstance(secret, str) else secret["source"]
    assert env["NNWATCH_USERS_FILE"] == f"/run/secrets/{secret_name}"
    assert "file" in compose["secrets"][secret_name]
    assert any(d["driver"] == "nvidia" and "gpu" in d["capabilities"] for d in _gpu_devices(dashboard))
    assert dashboard["restart"] in ("unless-stopped", "always")
    assert dashboard["init"] is True
    test = dashboard["healthcheck"]["test"]
    assert test[0] == "CMD" and "/opt/nnwatch/healthcheck.py" in test and not any("curl" in t for t in test)
    assert dashboard["ports"] == ["${NNWATCH_BIND:-127.0.0.1}:${NNWATCH_PORT:-8501}:8501"], "loopback by default"
    build = dashboard["build"]
    assert (COMPOSE.parent / build["context"] / build["dockerfile"]).resolve() == DOCKER_DIR / "Dockerfile"
    assert build["args"]["NNWATCH_TRAINING"] == "1"


def test_compose_trainer_runs_the_worker_with_the_same_paths_and_writable_results() -> None:
    compose = load_compose()
    dashboard, trainer = compose["services"]["dashboard"], compose["services"]["trainer"]
    assert trainer["image"] == dashboard["image"] and trainer["build"] == dashboard["build"]
    assert trainer["command"] == ["nnwatch", "worker"]
    assert trainer["hostname"], "jobs are recorded with the host name: it must survive re-creation"
    assert trainer["init"] is True and trainer["restart"] in ("unless-stopped", "always")
    assert trainer["shm_size"], "nnU-Net's data loaders need more than Docker's 64 MB /dev/shm"
    assert "ports" not in trainer
    volumes = _volumes(trainer)
    for name, target in NNUNET_TARGETS.items():
        assert trainer["environment"][name] == target
        assert volumes[target]["source"] == _volumes(dashboard)[target]["source"]
    assert volumes["/data/nnUNet_results"].get("read_only", False) is False
    assert volumes["/data/nnUNet_preprocessed"].get("read_only", False) is False
    assert volumes["/data/nnUNet_raw"]["read_only"] is True
    assert volumes[STATE_TARGET]["source"] == _volumes(dashboard)[STATE_TARGET]["source"]
    for name in ("NNWATCH_JOBS_DB", "NNWATCH_VARIANTS_DIR"):
        assert trainer["environment"][name] == dashboard["environment"][name]
    assert _gpu_devices(trainer) == _gpu_devices(dashboard)
    assert trainer["healthcheck"]["test"] == ["CMD", "nnwatch", "worker", "--check"]
    for service in (dashboard, trainer):  # GPU numbers mean the same to nvidia-smi (dashboard) and CUDA (jobs)
        assert service["environment"]["CUDA_DEVICE_ORDER"] == "PCI_BUS_ID"
        assert "utility" in service["environment"]["NVIDIA_DRIVER_CAPABILITIES"]


def test_every_compose_variable_is_documented() -> None:
    """Each ${VAR} of compose.yaml is in .env.example and README.md, so an admin can find what to set."""
    variables = set(re.findall(r"\$\{([A-Z_][A-Z0-9_]*)", COMPOSE.read_text()))
    assert {"NNUNET_RAW", "NNUNET_PREPROCESSED", "NNUNET_RESULTS", "NNWATCH_STATE"} <= variables
    example = (DOCKER_DIR / ".env.example").read_text()
    readme = (DOCKER_DIR / "README.md").read_text()
    for variable in sorted(variables):
        assert re.search(rf"^#?\s*{variable}=", example, re.MULTILINE), f"{variable} missing in .env.example"
        assert variable in readme, f"{variable} missing in docker/README.md"


# -- Dockerfile ---------------------------------------------------------------------------------------------
def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) with continuation lines joined and comments dropped."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in (DOCKER_DIR / "Dockerfile").read_text().splitlines()
                                         if not line.lstrip().startswith("#")))
    return [(parts[0].upper(), parts[1] if len(parts) > 1 else "")
            for parts in (line.strip().split(None, 1) for line in text.splitlines() if line.strip())]


def test_dockerfile_is_multistage_non_root_with_a_python_healthcheck() -> None:
    steps = _instructions()
    froms = [args for name, args in steps if name == "FROM"]
    assert froms == ["${BUILDER_IMAGE} AS builder", "${BASE_IMAGE} AS runtime"]
    assert steps[0] == ("ARG", "BASE_IMAGE=pytorch/pytorch:2.5.1-cuda12.4-cudnn9-runtime")
    assert steps[1] == ("ARG", "BUILDER_IMAGE=${BASE_IMAGE}")
    runtime = steps[[i for i, (name, _) in enumerate(steps) if name == "FROM"][1]:]
    assert ("COPY", "--from=builder /opt/nnwatch /opt/nnwatch") in runtime
    users = [args for name, args in runtime if name == "USER"]
    assert users and users[-1] not in ("root", "0", "0:0")
    healthcheck = next(args for name, args in runtime if name == "HEALTHCHECK")
    assert "/opt/nnwatch/healthcheck.py" in healthcheck
    assert all("curl" not in args for _, args in steps)
    cmd = json.loads(next(args for name, args in runtime if name == "CMD"))
    assert "exec nnwatch serve --host 0.0.0.0" in cmd[-1]
    run_step = next(args for name, args in steps if name == "RUN" and "NNWATCH_TRAINING" in args)
    for needle in ("--no-index --find-links /wheels", "--no-deps /src", "requirements-dashboard.txt",
                   "--system-site-packages"):
        assert needle in run_step, needle
    args = {args.split("=")[0] for name, args in steps if name == "ARG"}
    assert {"BASE_IMAGE", "NNWATCH_TRAINING", "NNWATCH_OFFLINE", "NNWATCH_UID", "NNWATCH_GID"} <= args


def _third_party_imports(folder: Path, *, module_level_only: bool) -> dict[str, str]:
    """{top-level module: first file importing it} for imports that are neither stdlib nor ours."""
    ours = {"app", "monitor", "trainer"}
    found: dict[str, str] = {}
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        nodes = tree.body if module_level_only else list(ast.walk(tree))
        for node in nodes:
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".")[0]
                if top not in sys.stdlib_module_names and top not in ours and top != "__future__":
                    found.setdefault(top, str(path.relative_to(REPO)))
    return found


def test_dashboard_only_requirements_cover_what_monitor_and_app_import() -> None:
    """NNWATCH_TRAINING=0 installs the project with --no-deps: a forgotten dependency would break the image."""
    listed = set()
    for line in (DOCKER_DIR / "requirements-dashboard.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            listed.add(re.split(r"[<>=!~ \[;]", line)[0].lower().replace("_", "-"))
    imported = _third_party_imports(REPO / "app", module_level_only=False)
    imported.update(_third_party_imports(REPO / "monitor", module_level_only=False))
    imported.update(_third_party_imports(REPO / "trainer", module_level_only=True))  # torch/nnU-Net are lazy
    optional = {"nnunetv2", "torch", "pynvml"}  # only for extends (the training image has them)
    distributions = importlib.metadata.packages_distributions()
    missing = {}
    for module, where in imported.items():
        if module in optional:
            continue
        names = {d.lower().replace("_", "-") for d in distributions.get(module, [module])}
        if not names & listed:
            missing[module] = where
    assert not missing, f"add to docker/requirements-dashboard.txt: {missing}"
    try:
        import tomllib

        dependencies = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["dependencies"]
    except ModuleNotFoundError:  # Python 3.10: the installed metadata says the same
        dependencies = [d for d in importlib.metadata.requires("nnwatch") or [] if "extra ==" not in d]
    declared = {re.split(r"[<>=!~ \[;]", d)[0].lower() for d in dependencies}
    assert listed <= declared, f"not a dependency of the project: {listed - declared}"


# -- the health check script ------------------------------------------------------------------------------
class _HealthHandler(BaseHTTPRequestHandler):
    ok_paths = frozenset({"/_stcore/health", "/lab/nnwatch/_stcore/health"})

    def do_GET(self) -> None:
        body = b"ok" if self.path in self.ok_paths else b"no"
        self.send_response(200 if self.path in self.ok_paths else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def health_server() -> Iterator[int]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _HealthHandler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield int(server.server_address[1])
    finally:
        server.shutdown()
        server.server_close()


def _healthcheck(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-I", str(DOCKER_DIR / "healthcheck.py")], env=env, capture_output=True,
                          text=True, timeout=30, check=False)


def test_healthcheck_follows_the_port_and_the_base_url_path(health_server: int) -> None:
    port = str(health_server)
    assert _healthcheck({"NNWATCH_PORT": port}).returncode == 0
    assert _healthcheck({"NNWATCH_PORT": port, "STREAMLIT_SERVER_BASE_URL_PATH": "/lab/nnwatch/"}).returncode == 0
    wrong = _healthcheck({"NNWATCH_PORT": port, "STREAMLIT_SERVER_BASE_URL_PATH": "elsewhere"})
    assert wrong.returncode == 1 and "elsewhere/_stcore/health" in wrong.stderr
    closed = _healthcheck({"NNWATCH_PORT": str(free_port())})
    assert closed.returncode == 1 and "unhealthy" in closed.stderr


# -- the image, in a private Docker ---------------------------------------------------------------------------
TIMINGS: dict[str, float] = {}


@pytest.fixture(scope="session")
def docker_daemon() -> Iterator[DockerDaemon]:
    """A dockerd of our own under /var/tmp; stopped by pid, the host's forwarding and firewall checked after."""
    missing = missing_requirements()
    if missing:
        pytest.skip(f"Docker tests need {', '.join(missing)} (as root: apt-get install -y docker.io debootstrap)")
    root = new_scratch_folder("nnwatch-docker-")
    try:
        with timed(TIMINGS, "dockerd start"):
            daemon = start_dockerd(root)
    except Exception:
        remove_tree(root)
        raise
    started = time.monotonic()
    try:
        yield daemon
    finally:
        with timed(TIMINGS, "dockerd stop"):
            daemon.stop()
        after = host_network_state()
        with timed(TIMINGS, "scratch removal"):
            remove_tree(root)
        TIMINGS["docker session total"] = round(time.monotonic() - started + TIMINGS.get("dockerd start", 0), 1)
        CACHE.mkdir(parents=True, exist_ok=True)
        (CACHE / "last-docker-timings.json").write_text(json.dumps(TIMINGS, indent=1) + "\n")
        print(f"\nnnwatch docker test timings (s): {json.dumps(TIMINGS)}")
        left = process_identity(daemon.pid)
        assert left is None or left.state in ("Z", "X"), f"dockerd {daemon.pid} is still running"
        assert after.ip_forward == daemon.network_before.ip_forward, "dockerd changed ip_forward"
        assert after.docker_chains <= daemon.network_before.docker_chains, "dockerd added iptables chains"


@pytest.fixture(scope="session")
def nnwatch_image(docker_daemon: DockerDaemon) -> str:
    """The dashboard-only image built on debootstrapped bookworms, with --network none (wheels from the host).

    The builder stage runs on a base with gcc and Python's headers, the runtime stage on one without.
    """
    with timed(TIMINGS, "base rootfs (debootstrap or cache)"):
        tarball, python = base_tarball()
    with timed(TIMINGS, "builder rootfs (debootstrap or cache)"):
        builder_tarball, builder_python = base_tarball(builder=True)
    assert builder_python == python, "the venv is copied from the builder: the Pythons must match"
    with timed(TIMINGS, "base image import"):
        docker_daemon.docker("import", str(tarball), BASE_TAG, timeout=300)
        docker_daemon.docker("import", str(builder_tarball), BUILDER_TAG, timeout=300)
    with timed(TIMINGS, "wheelhouse (pip download or cache)"):
        wheels = wheelhouse(python)
    context = new_scratch_folder("nnwatch-context-")
    try:
        with timed(TIMINGS, "context staging"):
            stage_context(context, wheels)
        with timed(TIMINGS, "image build"):
            build_image(docker_daemon, context, base=BASE_TAG, builder=BUILDER_TAG, training=False, offline=True)
    finally:
        remove_tree(context)
    return IMAGE_TAG


@pytest.fixture(scope="module")  # gone when this module is done, not at the end of the suite
def container_folders() -> Iterator[tuple[Path, Path]]:
    """(results tree, registry folder) that the image's user can reach: two v2 runs, one finished.

    Not under pytest's tmp_path: its folders are mode 0700 (root only), and the containers run as uid 10001.
    """
    base = new_scratch_folder("nnwatch-data-")
    base.chmod(0o755)
    results = base / "results"
    running = v2_run(results, dataset="Dataset001_Liver", config="3d_fullres", fold="0")
    write(running / "training_log_2024_5_1_10_00_00.txt", v2_log(range(40)))
    finished = v2_run(results, dataset="Dataset002_Lung", config="2d", fold="1")
    write(finished / "training_log_2024_5_1_10_00_00.txt", v2_log(range(12), done=True))
    state = base / "state"
    state.mkdir()
    os.chown(state, CONTAINER_UID, CONTAINER_UID)
    try:
        yield results, state
    finally:
        remove_tree(base)


@dataclass(frozen=True)
class Dashboard:
    """The running dashboard container and the host port it serves on (host network)."""

    container: str
    port: int


def _binds(folders: tuple[Path, Path]) -> list[Bind]:
    results, state = folders
    return [Bind(results, "/data/nnUNet_results", read_only=True), Bind(state, STATE_TARGET)]


@pytest.fixture(scope="module")
def dashboard(docker_daemon: DockerDaemon, nnwatch_image: str,
              container_folders: tuple[Path, Path]) -> Iterator[Dashboard]:
    """The image's own command and health check, on the host network at a free port, as compose runs it."""
    port = free_port()
    env = {"NNWATCH_PORT": str(port), "NNWATCH_OPEN_VIEW": "1",
           "NNWATCH_BACKEND_FACTORY": "trainer.handoff:backend_factory"}
    container = run_container(docker_daemon, f"nnwatch-test-dashboard-{port}", binds=_binds(container_folders),
                              env=env, image=nnwatch_image)
    try:
        TIMINGS["dashboard healthy after start"] = round(wait_healthy(docker_daemon, container), 1)
        yield Dashboard(container, port)
    finally:  # before its folders are deleted
        docker_daemon.docker("rm", "--force", container, timeout=60, check=False)


@pytest.mark.docker
def test_the_image_serves_the_overview_healthy_non_root_with_results_read_only(
        docker_daemon: DockerDaemon, dashboard: Dashboard) -> None:
    status, page = http_get(dashboard.port, "/")
    assert status == 200 and "<title>Streamlit</title>" in page and 'id="root"' in page
    assert http_get(dashboard.port, "/_stcore/health") == (200, "ok")

    details = inspect_container(docker_daemon, dashboard.container)
    assert details["State"]["Health"]["Status"] == "healthy"
    assert "/opt/nnwatch/healthcheck.py" in details["Config"]["Healthcheck"]["Test"]
    assert details["Config"]["User"] not in ("", "root", "0", "0:0")
    assert process_uid(details["State"]["Pid"]) != 0, "the container's main process runs as root"
    assert docker_daemon.docker("exec", dashboard.container, "id", "-u").stdout.strip() != "0"

    mounts = {mount["Destination"]: mount for mount in details["Mounts"]}
    assert mounts["/data/nnUNet_results"]["RW"] is False and mounts[STATE_TARGET]["RW"] is True
    probe = docker_daemon.docker("exec", "--user", "0", dashboard.container, "touch", "/data/nnUNet_results/probe",
                                 check=False)
    assert probe.returncode != 0 and "Read-only file system" in probe.stderr

    scan = docker_daemon.docker("exec", dashboard.container, "nnwatch", "scan", "/data/nnUNet_results",
                                "--format", "json", timeout=120)
    runs = {row["run_id"]: row for row in json.loads(scan.stdout)}
    assert runs["Dataset001_Liver/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0"]["epochs_completed"] == 40
    assert runs["Dataset002_Lung/nnUNetTrainer__nnUNetPlans__2d/fold_1"]["epochs_completed"] == 12
    no_torch = docker_daemon.docker("exec", dashboard.container, "python", "-c",
                                    "import importlib.util as u, sys; sys.exit(u.find_spec('torch') is not None)",
                                    check=False)
    assert no_torch.returncode == 0, "NNWATCH_TRAINING=0 must not install torch"



def _extension_modules() -> list[str]:
    """The C extensions pyproject.toml declares (optional for a pip install, required in the image)."""
    tomllib = pytest.importorskip("tomllib")
    modules = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]["ext-modules"]
    return [module["name"] for module in modules]


@pytest.mark.docker
def test_the_image_has_the_c_extensions_and_no_compiler(docker_daemon: DockerDaemon, dashboard: Dashboard) -> None:
    """Compiled in the builder stage, copied with the venv; gcc and the headers stay behind."""
    modules = _extension_modules()
    assert {"monitor.checkpoints._scalar_runs", "monitor.logs._v2log"} <= set(modules)
    probe = "import importlib, sys\nfor name in sys.argv[1:]:\n    print(importlib.import_module(name).__file__)"
    found = docker_daemon.docker("exec", dashboard.container, "python", "-I", "-c", probe, *modules, check=False)
    assert found.returncode == 0, found.stderr
    files = found.stdout.split()
    assert len(files) == len(modules) and all(f.startswith("/opt/nnwatch/venv/") and f.endswith(".so")
                                              for f in files), files
    toolchain = ("import os, shutil, sysconfig\n"
                 "print(shutil.which('gcc'), shutil.which('cc'),"
                 " os.path.isfile(os.path.join(sysconfig.get_paths()['include'], 'Python.h')))")
    left = docker_daemon.docker("exec", dashboard.container, "python", "-c", toolchain).stdout.split()
    assert left == ["None", "None", "False"], f"compiler or headers in the runtime image: {left}"

def _job(docker_daemon: DockerDaemon, dashboard: Dashboard, *args: str) -> dict[str, Any]:
    """Run HANDOFF_SCRIPT in the dashboard container (the dashboard's own JobsSource) and parse the job."""
    out = docker_daemon.docker("exec", dashboard.container, "python", "-c", HANDOFF_SCRIPT, *args, timeout=120)
    return json.loads(out.stdout.strip().splitlines()[-1])


def _trainer_commands(docker_daemon: DockerDaemon, trainer: str) -> str:
    """The full command lines of the container's processes (``docker top`` gives host pids; ps truncates)."""
    lines = docker_daemon.docker("top", trainer, "-eo", "pid").stdout.split()[1:]
    commands = []
    for pid in lines:
        try:
            commands.append(Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode())
        except OSError:
            continue  # ended meanwhile
    return "\n".join(commands)


@pytest.mark.docker
def test_a_training_run_by_the_trainer_container_survives_a_dashboard_restart(
        docker_daemon: DockerDaemon, dashboard: Dashboard, container_folders: tuple[Path, Path]) -> None:
    """compose.yaml's design, for real: the dashboard hands the job off, restarting it does not touch the job."""
    trainer = run_container(
        docker_daemon, f"nnwatch-test-trainer-{dashboard.port}", binds=_binds(container_folders),
        env={"NNWATCH_WORKER_INTERVAL_S": "0.5", "NNWATCH_CANCEL_GRACE_S": "2"}, network="none",
        hostname="nnwatch-trainer", command=["nnwatch", "worker"], healthcheck=False)
    try:
        _survive_restart_then_cancel(docker_daemon, dashboard, trainer, container_folders[1])
    finally:
        docker_daemon.docker("rm", "--force", trainer, timeout=60, check=False)


def _survive_restart_then_cancel(docker_daemon: DockerDaemon, dashboard: Dashboard, trainer: str,
                                 state: Path) -> None:
    run_dir = "/data/nnUNet_results/Dataset001_Liver/nnUNetTrainer__nnUNetPlans__3d_fullres/fold_0"
    marker = "nnwatch-docker-test-training"
    job = _job(docker_daemon, dashboard, "submit", run_dir, "2000",
               f"import time; print('{marker}', flush=True); time.sleep(600)")
    assert (job["state"], job["backend_job_id"], job["pid"]) == ("queued", "handoff", None)

    def running() -> bool:
        current = _job(docker_daemon, dashboard, "get", job["job_id"])
        return current["state"] == "running" and current["pid"] is not None

    wait_for(running, 60, "the trainer container to start the job")
    started = _job(docker_daemon, dashboard, "get", job["job_id"])
    assert started["host"] == "nnwatch-trainer"
    assert marker in _trainer_commands(docker_daemon, trainer)

    with timed(TIMINGS, "dashboard restart until healthy"):
        docker_daemon.docker("restart", "--time", "20", dashboard.container, timeout=120)
        wait_healthy(docker_daemon, dashboard.container)
    assert marker in _trainer_commands(docker_daemon, trainer), "the training died with the dashboard"
    assert _job(docker_daemon, dashboard, "get", job["job_id"])["state"] == "running"
    assert http_get(dashboard.port, "/_stcore/health") == (200, "ok")

    assert _job(docker_daemon, dashboard, "cancel", job["job_id"])["state"] == "cancelled"
    wait_for(lambda: marker not in _trainer_commands(docker_daemon, trainer), 30, "the worker to stop the job")
    exit_record = json.loads((state / "jobs" / job["job_id"] / EXIT_FILE).read_text())
    assert exit_record["terminated_by"] == "SIGTERM"
    assert docker_daemon.docker("exec", trainer, "nnwatch", "worker", "--check",
                                check=False).returncode == 0
