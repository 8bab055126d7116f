"""Real local receivers for notification tests: an HTTP server that apprise's ``json://`` posts to, an SMTP
server (aiosmtpd), synthetic runs written by monitor.synth, and waiting for conditions with deadlines."""

from __future__ import annotations

import json
import os
import socket
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, TypeVar

from monitor.synth import CurveSpec, FakeRun, make_run_dir

T = TypeVar("T")


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05) -> T:
    """Poll ``condition`` until it returns something truthy; fail with ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class Post:
    path: str
    body: dict[str, Any]
    at: float


@dataclass
class JsonReceiver:
    """A webhook: records every POST with its arrival time; ``failing`` makes it answer 500."""

    port: int = field(default_factory=free_port)
    posts: list[Post] = field(default_factory=list)
    failing: bool = False
    refused: int = 0
    server: ThreadingHTTPServer | None = None

    def start(self) -> JsonReceiver:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length", 0))
                data = self.rfile.read(length)
                if receiver.failing:
                    receiver.refused += 1
                    self.send_response(500)
                    self.end_headers()
                    return
                receiver.posts.append(Post(self.path, json.loads(data), time.time()))
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    @property
    def url(self) -> str:
        return f"json://127.0.0.1:{self.port}/hook"

    def messages(self, text: str = "") -> list[Post]:
        return [post for post in self.posts if text in post.body.get("title", "") + post.body.get("message", "")]


class MailReceiver:
    """An SMTP server on a free port that keeps every message it accepts."""

    def __init__(self) -> None:
        from aiosmtpd.controller import Controller

        self.messages: list[tuple[bytes, float]] = []
        self.port = free_port()
        outer = self

        class Handler:
            async def handle_DATA(self, server: object, session: object, envelope: Any) -> str:
                outer.messages.append((envelope.content, time.time()))
                return "250 Message accepted for delivery"

        self.controller = Controller(Handler(), hostname="127.0.0.1", port=self.port)

    def start(self) -> MailReceiver:
        self.controller.start()
        return self

    def stop(self) -> None:
        self.controller.stop()

    @property
    def url(self) -> str:
        return (f"mailto://127.0.0.1:{self.port}?from=nnwatch@lab.local&to=alice@lab.local&secure=no"
                "&smtp=127.0.0.1")


def write_config(path: Path, urls: list[str], *, events: str = '["*"]', runs: str = "*", extra: str = "",
                 base_url: str | None = "http://lab-server:8501") -> Path:
    """A rules file (mode 600) sending ``events`` about ``runs`` to ``urls``; ``base_url=None`` leaves it out."""
    quoted = ", ".join(json.dumps(url) for url in urls)
    head = "" if base_url is None else f'base_url = "{base_url}"\n'
    path.write_text(f'{head}{extra}\n[[rule]]\nevents = {events}\nruns = "{runs}"\n'
                    f"urls = [{quoted}]\n")
    os.chmod(path, 0o600)
    return path


def live_run(root: Path, *, dataset: str = "Dataset001_Liver", trainer: str = "nnUNetTrainer", fold: int = 0,
             planned: int = 1000, epochs: int = 50, spec: CurveSpec | None = None, epoch_s: float = 60.0) -> FakeRun:
    """A running fold whose last epoch ended just now (its log clock in step with the real one)."""
    folder = make_run_dir(root, dataset, trainer, "nnUNetPlans", "3d_fullres", fold, labels=("liver", "tumour"))
    run = FakeRun(folder, planned_epochs=planned, epoch_s=epoch_s,
                  spec=spec or CurveSpec((0.9, 0.8), timescale=0.05, seed=fold))
    run.clock = datetime.now() - timedelta(seconds=epoch_s * epochs + 30)
    run.start_session()
    run.history(epochs)
    return run


def python_argv(code: str) -> tuple[str, ...]:
    return (sys.executable, "-c", code)
