"""A private Docker daemon, a local Debian base image and the nnwatch image, for tests/docker/test_image.py.

Why a daemon of its own: the tests must neither depend on nor disturb a Docker the machine may already run,
and CI has no registry access (Docker Hub is unreachable), so nothing may be pulled. Everything lives under
one folder in /var/tmp (on disk: overlay2 wants a real file system): data root, exec root, socket, pid file,
CLI config. The daemon runs with ``--bridge=none --iptables=false --ip-forward=false --ip-masq=false`` so
it leaves the host's firewall and forwarding alone; containers use the host's network (the dashboard) or
none (the trainer). :func:`host_network_state` is compared before and after to prove it.

The base image is made with debootstrap (bookworm minbase + python3 + python3-venv) and imported, and so
is the builder image: the same plus gcc and Python's headers, so the image's C extensions are compiled in
its builder stage while the runtime stage stays without a compiler. Their tarballs are cached in
``~/.cache/nnwatch-test/`` keyed by date (with the downloaded packages), so a warm machine skips the
bootstraps. The dashboard-only dependency wheels are downloaded on the host (the build runs with
``--network none``) and cached keyed by the requirements and the image's Python version.

Every command is an argv list; no shell ever sees a name or a path.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import hashlib
import http.client
import inspect
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from trainer import ExtendPlan

REPO = Path(__file__).resolve().parents[1]
DOCKER_DIR = REPO / "docker"
CACHE = Path(os.environ.get("NNWATCH_TEST_CACHE") or Path.home() / ".cache" / "nnwatch-test")
# /var/tmp is on disk on Debian (unlike a tmpfs /tmp); overlay2 and a 1 GB image want a real file system.
SCRATCH = Path(os.environ.get("NNWATCH_TEST_DOCKER_TMP") or "/var/tmp")
DEBIAN_MIRROR = os.environ.get("NNWATCH_TEST_DEBIAN_MIRROR") or "http://deb.debian.org/debian"
SUITE = "bookworm"
BASE_PACKAGES = ("python3", "python3-venv")
BUILDER_PACKAGES = (*BASE_PACKAGES, "gcc", "libc6-dev", "python3-dev")
BASE_TAG = "nnwatch-test-base:bookworm"
BUILDER_TAG = "nnwatch-test-builder:bookworm"
IMAGE_TAG = "nnwatch-test:dashboard"
CONTAINER_UID = 10001  # the Dockerfile's default NNWATCH_UID
_SBIN = ("/usr/sbin", "/usr/bin", "/sbin", "/bin")


def _which(name: str) -> str | None:
    return shutil.which(name) or next(
        (str(Path(folder, name)) for folder in _SBIN if Path(folder, name).is_file()), None)


def docker_cli() -> str | None:
    """The docker CLI shipped with dockerd (Debian's /usr/bin/docker) when present, else the one on PATH.

    A newer standalone CLI would default to BuildKit through a buildx plugin that may be missing; the
    matching CLI and ``DOCKER_BUILDKIT=0`` give the classic builder either way.
    """
    dockerd = _which("dockerd")
    if dockerd is not None:
        beside = [Path(dockerd).with_name("docker"), Path("/usr/bin/docker")]
        for candidate in beside:
            if candidate.is_file() and os.access(candidate, os.X_OK):
                return str(candidate)
    return _which("docker")


def missing_requirements() -> list[str]:
    """What this machine lacks to run the Docker tests (binaries, root, Linux)."""
    missing = []
    if sys.platform != "linux":
        missing.append("Linux")
    elif os.geteuid() != 0:
        missing.append("root (to start dockerd and debootstrap)")
    for name in ("dockerd", "debootstrap", "tar"):
        if _which(name) is None:
            missing.append(name)
    if docker_cli() is None:
        missing.append("docker (CLI)")
    return missing


def run(argv: Sequence[str], *, timeout: float, env: dict[str, str] | None = None, check: bool = True,
        input_text: str | None = None) -> subprocess.CompletedProcess[str]:
    """Run an argv (never a shell); on failure raise with the command's output in the message."""
    completed = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, env=env, check=False,
                               input=input_text, stdin=None if input_text is not None else subprocess.DEVNULL)
    if check and completed.returncode != 0:
        raise RuntimeError(f"{' '.join(argv[:4])} ... exited {completed.returncode}:\n"
                           f"{completed.stdout[-4000:]}\n{completed.stderr[-4000:]}")
    return completed


# -- the host's network state ------------------------------------------------------------------------------
@dataclass(frozen=True)
class NetworkState:
    """What dockerd could change on the host: IPv4 forwarding and Docker's iptables chains."""

    ip_forward: str
    docker_chains: frozenset[str]


def host_network_state() -> NetworkState:
    """Read ``ip_forward`` and the names of ``DOCKER*`` iptables chains (empty when iptables is absent)."""
    try:
        forward = Path("/proc/sys/net/ipv4/ip_forward").read_text().strip()
    except OSError:
        forward = "?"
    chains: set[str] = set()
    save = _which("iptables-save")
    if save is not None:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            out = run([save], timeout=30, check=False).stdout
            chains = {line.split()[0][1:] for line in out.splitlines() if line.startswith(":DOCKER")}
    return NetworkState(forward, frozenset(chains))


def restore_ip_forward(before: NetworkState) -> None:
    """Put ``ip_forward`` back if it changed (dockerd sets it to 1 unless told not to)."""
    if before.ip_forward in ("0", "1") and host_network_state().ip_forward != before.ip_forward:
        with contextlib.suppress(OSError):
            Path("/proc/sys/net/ipv4/ip_forward").write_text(before.ip_forward + "\n")


# -- mounts and folders ---------------------------------------------------------------------------------------
def mounts_under(folder: Path) -> list[Path]:
    """Mount points at or below ``folder``, deepest first (from /proc/self/mountinfo)."""
    prefix = str(folder.resolve())
    found = []
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/mountinfo").read_text().splitlines():
            point = line.split()[4].replace("\\040", " ")
            if point == prefix or point.startswith(prefix + "/"):
                found.append(Path(point))
    return sorted(found, key=lambda p: len(p.parts), reverse=True)


def unmount_all(folder: Path) -> list[Path]:
    """Unmount whatever is still mounted below ``folder``; return what could not be unmounted."""
    for point in mounts_under(folder):
        if run(["umount", str(point)], timeout=60, check=False).returncode != 0:
            run(["umount", "--lazy", str(point)], timeout=60, check=False)
    return mounts_under(folder)


def remove_tree(folder: Path) -> None:
    """Delete a scratch folder, but never while something is mounted inside it."""
    if not folder.exists():
        return
    left = unmount_all(folder)
    if left:
        raise RuntimeError(f"still mounted, not deleting {folder}: {[str(p) for p in left]}")
    shutil.rmtree(folder, ignore_errors=True)


# -- the daemon -------------------------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state not in ("Z", "X")


def stop_pid(pid: int, grace_s: float) -> None:
    """SIGTERM one process, SIGKILL it after ``grace_s``; returns once it is gone (or unkillable)."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 10.0)):
        try:
            os.kill(pid, sig)
        except ProcessLookupError:
            return
        deadline = time.monotonic() + wait_s
        while _alive(pid) and time.monotonic() < deadline:
            time.sleep(0.1)
        if not _alive(pid):
            return


@dataclass
class DockerDaemon:
    """A running private dockerd; :meth:`docker` runs the CLI against it."""

    root: Path
    process: subprocess.Popen[bytes]
    cli: str
    network_before: NetworkState
    started_containers: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def socket(self) -> Path:
        return self.root / "docker.sock"

    @property
    def log(self) -> Path:
        return self.root / "dockerd.log"

    @property
    def env(self) -> dict[str, str]:
        """The CLI's environment: this daemon, a private CLI config, the classic builder."""
        env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_")}
        env.update(DOCKER_HOST=f"unix://{self.socket}", DOCKER_CONFIG=str(self.root / "cli"),
                   DOCKER_BUILDKIT="0", DOCKER_CLI_HINTS="false")
        return env

    def docker(self, *args: str, timeout: float = 120, check: bool = True,
               input_text: str | None = None) -> subprocess.CompletedProcess[str]:
        """``docker ARGS...`` against this daemon."""
        return run([self.cli, *args], timeout=timeout, env=self.env, check=check, input_text=input_text)

    def log_tail(self, chars: int = 3000) -> str:
        try:
            return self.log.read_text(errors="replace")[-chars:]
        except OSError:
            return "(no dockerd log)"

    def stop(self) -> None:
        """Remove the containers we started, stop dockerd (and its containerd) by pid, clean up."""
        for container in self.started_containers:
            with contextlib.suppress(subprocess.SubprocessError, RuntimeError):
                self.docker("rm", "--force", "--volumes", container, timeout=60, check=False)
        containerd_pid = _read_pid(self.root / "exec" / "containerd" / "containerd.pid")
        stop_pid(self.pid, grace_s=30)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.process.wait(timeout=5)
        if containerd_pid is not None:  # dockerd stops the containerd it started; only a SIGKILL leaves it
            stop_pid(containerd_pid, grace_s=10)
        restore_ip_forward(self.network_before)
        unmount_all(self.root)


def _read_pid(path: Path) -> int | None:
    try:
        return int(path.read_text().strip())
    except (OSError, ValueError):
        return None


def start_dockerd(root: Path, timeout_s: float = 60.0) -> DockerDaemon:
    """Start dockerd with all of its state under ``root`` and wait until it answers."""
    dockerd, cli = _which("dockerd"), docker_cli()
    if dockerd is None or cli is None:
        raise RuntimeError("dockerd or the docker CLI is missing")
    root.mkdir(parents=True, exist_ok=True)
    (root / "cli").mkdir(exist_ok=True)
    config = root / "daemon.json"
    config.write_text("{}\n")  # not /etc/docker/daemon.json: its settings could clash with ours
    before = host_network_state()
    argv = [dockerd, "--config-file", str(config), "--data-root", str(root / "data"), "--exec-root",
            str(root / "exec"), "--pidfile", str(root / "dockerd.pid"), "--host", f"unix://{root / 'docker.sock'}",
            "--bridge=none", "--iptables=false", "--ip-forward=false", "--ip-masq=false",
            "--containerd-namespace", "nnwatch-test", "--containerd-plugins-namespace", "nnwatch-test-plugins"]
    with open(root / "dockerd.log", "wb") as log:
        process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                   start_new_session=True)
    daemon = DockerDaemon(root=root, process=process, cli=cli, network_before=before)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            daemon.stop()
            raise RuntimeError(f"dockerd exited with {process.returncode}:\n{daemon.log_tail()}")
        if daemon.socket.exists() and daemon.docker("version", timeout=20, check=False).returncode == 0:
            return daemon
        time.sleep(0.3)
    daemon.stop()
    raise RuntimeError(f"dockerd did not answer within {timeout_s:.0f} s:\n{daemon.log_tail()}")


def new_scratch_folder(prefix: str) -> Path:
    """A fresh folder on disk (see SCRATCH), short enough for unix socket paths."""
    SCRATCH.mkdir(parents=True, exist_ok=True)
    return Path(tempfile.mkdtemp(prefix=prefix, dir=SCRATCH))


# -- the base image -----------------------------------------------------------------------------------------
def _rootfs_python(rootfs: Path) -> str:
    """``3.11`` for a rootfs whose /usr/bin/python3 links to python3.11."""
    target = os.readlink(rootfs / "usr" / "bin" / "python3")
    version = Path(target).name.removeprefix("python")
    if not version.replace(".", "").isdigit():
        raise RuntimeError(f"cannot tell the Python version of {rootfs} from {target!r}")
    return version


def base_tarball(cache: Path = CACHE, today: dt.date | None = None, *, builder: bool = False) -> tuple[Path, str]:
    """(tarball of a bookworm minbase rootfs with python3 + venv, its Python version), cached per day.

    ``builder``: the same plus gcc and Python's headers (:data:`BUILDER_PACKAGES`). A day's tarball is
    reused; older ones are deleted once a new one exists. Bootstrapping needs the Debian mirror
    (``NNWATCH_TEST_DEBIAN_MIRROR``); the downloaded packages are kept for the next bootstrap.
    """
    packages = BUILDER_PACKAGES if builder else BASE_PACKAGES
    stamp = (today or dt.date.today()).strftime("%Y%m%d")
    prefix = f"debian-{SUITE}-minbase-{'build' if builder else 'python3'}-"
    tarball = cache / f"{prefix}{stamp}.tar"
    meta = tarball.with_suffix(".json")
    if tarball.is_file() and meta.is_file():
        return tarball, json.loads(meta.read_text())["python"]
    cache.mkdir(parents=True, exist_ok=True)
    work = new_scratch_folder("nnwatch-debootstrap-")
    try:
        rootfs = work / "rootfs"
        debs = cache / "debs"
        debs.mkdir(exist_ok=True)
        run([_which("debootstrap") or "debootstrap", "--variant=minbase", f"--cache-dir={debs}",
             "--include=" + ",".join(packages), SUITE, str(rootfs), DEBIAN_MIRROR], timeout=900)
        for leftover in ("var/cache/apt/archives", "var/lib/apt/lists"):
            for entry in (rootfs / leftover).glob("*"):
                if entry.is_file():
                    entry.unlink()
        python = _rootfs_python(rootfs)
        partial = cache / f".{tarball.name}.{os.getpid()}.partial"
        run(["tar", "--create", "--file", str(partial), "--directory", str(rootfs), "--numeric-owner", "."],
            timeout=600)
        os.replace(partial, tarball)
        meta.write_text(json.dumps({"python": python, "suite": SUITE, "packages": list(packages)}) + "\n")
    finally:
        remove_tree(work)
    for old in cache.glob(f"{prefix}*"):
        if old not in (tarball, meta):
            old.unlink(missing_ok=True)
    return tarball, python


# -- the wheelhouse and the build context ---------------------------------------------------------------
def _platform_tags(machine: str) -> list[str]:
    """manylinux tags a glibc-2.36 (bookworm) image accepts, newest-compatible first."""
    tags = [f"manylinux_2_{minor}_{machine}" for minor in range(36, 16, -1)]
    tags += [f"manylinux_2_{minor}_{machine}" for minor in (12, 5)]
    tags += [f"manylinux{legacy}_{machine}" for legacy in ("2014", "2010", "1")]
    return tags


def wheelhouse(python: str, cache: Path = CACHE) -> Path:
    """Wheels for docker/requirements-dashboard.txt (+ the build backend) for the image's Python.

    Downloaded with the host's pip for the *image's* interpreter and platform (``--only-binary``), once per
    requirements text and Python version; the image build then runs with ``--network none``.
    """
    requirements = DOCKER_DIR / "requirements-dashboard.txt"
    machine = platform.machine()
    build_backend = ("setuptools>=68", "wheel")
    key = hashlib.sha256("\n".join([requirements.read_text(), python, machine, *build_backend]).encode())
    folder = cache / f"wheels-py{python}-{machine}-{key.hexdigest()[:12]}"
    if (folder / ".complete").is_file():
        return folder
    cache.mkdir(parents=True, exist_ok=True)
    partial = Path(tempfile.mkdtemp(prefix=".wheels-", dir=cache))
    try:
        argv = [sys.executable, "-m", "pip", "download", "--quiet", "--disable-pip-version-check",
                "--dest", str(partial), "--only-binary=:all:", "--python-version", python,
                "--implementation", "cp", "--abi", f"cp{python.replace('.', '')}", "--abi", "abi3", "--abi", "none"]
        for tag in _platform_tags(machine):
            argv += ["--platform", tag]
        argv += ["--requirement", str(requirements), *build_backend]
        run(argv, timeout=900)
        (partial / ".complete").write_text(dt.datetime.now().isoformat() + "\n")
        try:
            os.replace(partial, folder)  # atomic; fails when a concurrent session got there first
        except OSError:
            if not (folder / ".complete").is_file():
                raise
    finally:
        shutil.rmtree(partial, ignore_errors=True)
    for old in cache.glob(f"wheels-py{python}-{machine}-*"):
        if old != folder:
            shutil.rmtree(old, ignore_errors=True)
    return folder


_CONTEXT_IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc", "*.so", ".env", "secrets", "*.whl")


def stage_context(dest: Path, wheels: Path | None) -> Path:
    """A build context with only what docker/Dockerfile copies (never the repository's .venv)."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in ("pyproject.toml", "README.md"):
        shutil.copy2(REPO / name, dest / name)
    for name in ("app", "monitor", "trainer", "docker"):
        shutil.copytree(REPO / name, dest / name, ignore=_CONTEXT_IGNORE)
    if wheels is not None:
        (dest / "docker" / "wheels").mkdir(exist_ok=True)
        for wheel in wheels.glob("*.whl"):
            shutil.copy2(wheel, dest / "docker" / "wheels" / wheel.name)
    return dest


def build_image(daemon: DockerDaemon, context: Path, *, base: str, builder: str, tag: str = IMAGE_TAG,
                training: bool = False, offline: bool = True) -> None:
    """``docker build`` of docker/Dockerfile: builder stage on ``builder``, runtime on ``base``; offline
    builds get no network at all."""
    daemon.docker(
        "build", "--network", "none" if offline else "host", "--file", str(context / "docker" / "Dockerfile"),
        "--build-arg", f"BASE_IMAGE={base}", "--build-arg", f"BUILDER_IMAGE={builder}",
        "--build-arg", f"NNWATCH_TRAINING={int(training)}",
        "--build-arg", f"NNWATCH_OFFLINE={int(offline)}", "--tag", tag, str(context), timeout=900)


# -- containers ----------------------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass(frozen=True)
class Bind:
    """A bind mount: host folder, container path, read-only or not."""

    source: Path
    target: str
    read_only: bool = False

    def option(self) -> str:
        """The ``--mount`` value (paths come from the test's own temp folders: no commas)."""
        if "," in str(self.source) or "," in self.target:
            raise ValueError(f"a comma in a mount path cannot be passed to --mount: {self.source}")
        return f"type=bind,source={self.source},target={self.target}" + (",readonly" if self.read_only else "")


def run_container(daemon: DockerDaemon, name: str, *, binds: Sequence[Bind], env: dict[str, str],
                  network: str = "host", hostname: str | None = None, command: Sequence[str] = (),
                  healthcheck: bool = True, image: str = IMAGE_TAG) -> str:
    """``docker run --detach --init`` as compose does; returns the container id (and remembers it)."""
    argv = ["run", "--detach", "--init", "--name", name, "--network", network]
    if hostname:
        argv += ["--hostname", hostname]
    # The image's HEALTHCHECK with a short interval (Docker 20.10 has no --health-start-interval).
    argv += ["--health-interval", "2s", "--health-retries", "3"] if healthcheck else ["--no-healthcheck"]
    for bind in binds:
        argv += ["--mount", bind.option()]
    for key, value in env.items():
        argv += ["--env", f"{key}={value}"]
    container = daemon.docker(*argv, image, *command, timeout=120).stdout.strip()
    daemon.started_containers.append(container)
    return container


def inspect_container(daemon: DockerDaemon, container: str) -> dict[str, Any]:
    """``docker inspect`` of one container, parsed."""
    return json.loads(daemon.docker("inspect", container, timeout=60).stdout)[0]


def wait_healthy(daemon: DockerDaemon, container: str, timeout_s: float = 120.0) -> float:
    """Seconds until Docker reports the container ``healthy``; fails early when it stops or turns unhealthy."""
    started = time.monotonic()
    last: dict[str, Any] = {}
    while time.monotonic() - started < timeout_s:
        state = inspect_container(daemon, container)["State"]
        last = state
        health = (state.get("Health") or {}).get("Status")
        if health == "healthy":
            return time.monotonic() - started
        if not state.get("Running") or health == "unhealthy":
            break
        time.sleep(0.5)
    logs = daemon.docker("logs", "--tail", "60", container, timeout=60, check=False)
    raise AssertionError(f"container {container[:12]} not healthy: {json.dumps(last)[-2000:]}\n"
                         f"{logs.stdout[-3000:]}{logs.stderr[-3000:]}")


def http_get(port: int, path: str, timeout_s: float = 10.0) -> tuple[int, str]:
    """(status, body) of a GET on 127.0.0.1."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
    finally:
        connection.close()


def process_uid(pid: int) -> int:
    """The real uid of a host process (a container's main process, seen from the host)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return int(line.split()[1])
    raise RuntimeError(f"no Uid line for pid {pid}")


# -- the hand-off ------------------------------------------------------------------------------------
def handmade_plan(run_dir: Path, epochs: int, argv: Sequence[str]) -> ExtendPlan:
    """An extend plan for ``run_dir`` that runs ``argv``: what the dashboard's dialog submits, minus nnU-Net.

    ``plan_extend`` would import nnU-Net and torch (~20 s cold) to find the trainer; the handoff only
    needs the plan's registry fields, so they are filled in as ``plan_extend`` would for a built-in variant.
    """
    from monitor.runs.layout import locate_run
    from trainer import ExtendPlan

    parent = locate_run(run_dir)
    trainer = f"nnUNetTrainer_{epochs}epochs"
    model = f"{trainer}__{parent.plans}__{parent.configuration}"
    return ExtendPlan(parent=parent, parent_epochs=None, epochs=epochs, backend="local", device="cpu", gpu=None,
                      new_trainer=trainer, new_run_dir=parent.path.parents[1] / model / parent.path.name,
                      new_run_id=f"{parent.dataset}/{model}/{parent.path.name}", argv=tuple(argv), env={},
                      checks=())


# Run inside the dashboard container with `python -c`: submit / look up / cancel a job exactly as the
# dashboard does (JobsSource with the backend factory from $NNWATCH_BACKEND_FACTORY). Arguments: ACTION ...
HANDOFF_SCRIPT = "\n".join([
    "from __future__ import annotations",
    "import json, os, sys",
    "from collections.abc import Sequence",
    "from pathlib import Path",
    "from app.dashboard.jobs_source import JobsSource, load_backend_factory",
    "",
    inspect.getsource(handmade_plan),
    "source = JobsSource(None, backend_factory=load_backend_factory(os.environ['NNWATCH_BACKEND_FACTORY']))",
    "action = sys.argv[1]",
    "if action == 'submit':",
    "    argv = [sys.executable, '-c', sys.argv[4]]",
    "    job = source.submit(handmade_plan(Path(sys.argv[2]), int(sys.argv[3]), argv), 'alice')",
    "elif action == 'cancel':",
    "    job = source.cancel(sys.argv[2], 'alice')",
    "else:",
    "    job = source.registry.get(sys.argv[2])",
    "print(json.dumps(job.to_dict()))",
])


@contextlib.contextmanager
def timed(timings: dict[str, float], name: str) -> Iterator[None]:
    """Record how long a phase took (the Docker tests report their phases)."""
    started = time.monotonic()
    try:
        yield
    finally:
        timings[name] = round(time.monotonic() - started, 1)
