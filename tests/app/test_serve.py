"""``nnwatch serve`` and ``nnwatch passwd``: options, refusals with exit code 2, and a real start and stop."""

from __future__ import annotations

import argparse
import http.client
import io
import os
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
import streamlit
from app_support import build_fixture_tree
from paths import REPO

from app.auth import load_users, verify_secret
from app.cli import build_parser, main
from app.cli.serve import MAIN_SCRIPT, serve_env, streamlit_argv
from app.dashboard.settings import load_settings
from monitor.index import RunIndex
from monitor.runs import discover_runs


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def test_serve_is_registered_with_safe_defaults() -> None:
    args = build_parser().parse_args(["serve"])
    assert (args.host, args.port, args.root, args.open_view) == ("127.0.0.1", 8501, None, False)


def test_streamlit_argv_is_a_list_without_a_shell() -> None:
    argv = streamlit_argv("127.0.0.1", 9999, python="/venv/bin/python")
    assert argv[:5] == ["/venv/bin/python", "-m", "app.dashboard.server", "run", str(MAIN_SCRIPT)]
    assert argv[argv.index("--server.address") + 1] == "127.0.0.1"
    assert argv[argv.index("--server.port") + 1] == "9999"
    assert argv[argv.index("--server.headless") + 1] == "true"


def test_the_server_turns_streamlits_collection_after_every_script_run_off() -> None:
    from streamlit import config

    from app.dashboard.server import STREAMLIT_DEFAULTS

    options = {option.env_var: key for key, option in config.get_config_options().items()}
    assert {options[name]: value for name, value in STREAMLIT_DEFAULTS.items()} == {"runner.postScriptGC": "false"}


def test_serve_env_passes_options_to_the_dashboard(tmp_path: Path) -> None:
    args = argparse.Namespace(host="0.0.0.0", root=str(tmp_path), jobs_db="j.sqlite3", users_file="users",
                              open_view=True, refresh=1.5)
    env = serve_env(args, {"PATH": "/bin"})
    assert env["NNWATCH_ROOT"] == str(tmp_path) and env["NNWATCH_HOST"] == "0.0.0.0"
    assert env["NNWATCH_OPEN_VIEW"] == "1" and env["NNWATCH_REFRESH_S"] == "1.5"
    assert Path(env["NNWATCH_JOBS_DB"]).is_absolute() and Path(env["NNWATCH_USERS_FILE"]).is_absolute()


def test_serve_refuses_a_missing_root_and_a_busy_port(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["serve", "--root", str(tmp_path / "missing")]) == 2
    assert "results root not found" in capsys.readouterr().err
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        assert main(["serve", "--root", str(tmp_path), "--port", str(port)]) == 2
    assert "is in use" in capsys.readouterr().err


def test_serve_with_several_roots_names_the_missing_one(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "lab").mkdir()
    missing = tmp_path / "old_disk" / "nnUNet_results"
    assert main(["serve", "--root", str(tmp_path / "lab"), "--root", str(missing)]) == 2
    assert f"results root not found or not a folder: {missing}" in capsys.readouterr().err


def test_serve_passes_every_root_to_the_dashboard(tmp_path: Path) -> None:
    args = build_parser().parse_args(["serve", "--root", str(tmp_path / "a"), "--root", str(tmp_path / "b")])
    env = serve_env(args, {})
    assert env["NNWATCH_ROOT"].split(os.pathsep) == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert load_settings(env).roots == (tmp_path / "a", tmp_path / "b")


def test_passwd_writes_a_hashed_login(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    users = tmp_path / "users"
    monkeypatch.setattr(sys, "stdin", io.StringIO("a-long-password\n"))
    assert main(["passwd", "alice", "--users-file", str(users), "--stdin"]) == 0
    stored = load_users(users)["alice"]
    assert "a-long-password" not in users.read_text() and verify_secret("a-long-password", stored)
    monkeypatch.setattr(sys, "stdin", io.StringIO("short\n"))
    assert main(["passwd", "bob", "--users-file", str(users), "--stdin"]) == 2


def _indexed_run_ids(state: Path, root: Path) -> set[str]:
    if not (state / "index.sqlite3").exists():
        return set()
    index = RunIndex(state / "index.sqlite3")
    try:
        return {stored.run_id for stored in index.stored_runs(root).last_known()}
    finally:
        index.close()


def _small_script_on_a_kept_alive_connection_s(port: int) -> float:
    """The median time to fetch one of the page's small scripts again and again on one connection, as a browser
    does (a page loads some 50 of them over 6 connections)."""
    scripts = Path(streamlit.__file__).parent / "static" / "static" / "js"
    name = min(scripts.glob("*.js"), key=lambda path: path.stat().st_size).name
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    times = []
    try:
        for _ in range(5):
            started = time.perf_counter()
            connection.request("GET", f"/static/js/{name}")
            response = connection.getresponse()
            assert response.status == 200 and response.read()
            times.append(time.perf_counter() - started)
    finally:
        connection.close()
    return statistics.median(times)


def test_connections_are_accepted_without_nagles_delay() -> None:
    """Streamlit's listening socket names no protocol, so asyncio leaves Nagle's algorithm on; the server sets
    ``TCP_NODELAY`` there and every accepted connection inherits it."""
    from streamlit.web.server.starlette import starlette_server

    from app.dashboard import server

    original = starlette_server._bind_socket
    server._no_delay_on_connections()
    try:
        listener = starlette_server._bind_socket("127.0.0.1", 0, 8)
    finally:
        starlette_server._bind_socket = original
    with listener, socket.create_connection(listener.getsockname()[:2]):
        accepted, _ = listener.accept()
        with accepted:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)


def test_serve_starts_streamlit_and_stops_on_sigterm(tmp_path: Path) -> None:
    """A real start: the runs are read (and saved to the run index) before anyone opens a page, so the first
    visitor does not wait for them; SIGTERM stops it."""
    tree = build_fixture_tree(tmp_path)
    port = free_port()
    state = tmp_path / "state"
    env = {**os.environ, **tree.env, "PYTHONPATH": f"{REPO / 'tests'}:{REPO}", "NNWATCH_STATE": str(state)}
    env.pop("NNWATCH_ROOT")
    process = subprocess.Popen([sys.executable, "-m", "app.cli", "serve", "--root", str(tree.root), "--port",
                                str(port)], cwd=REPO, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        body = b""
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/health", timeout=2) as response:
                    body = response.read()
                    break
            except OSError:
                if process.poll() is not None:
                    break
                time.sleep(0.2)  # polling a port that is not open yet: there is no event to wait on
        assert body == b"ok", process.stdout.read().decode() if process.poll() is not None else "no answer"
        expected = {location.run_id for location in discover_runs(tree.root, [])}
        while _indexed_run_ids(state, tree.root) != expected and time.monotonic() < deadline:
            time.sleep(0.2)  # the server saves on its own schedule: there is no event to wait on here
        assert _indexed_run_ids(state, tree.root) == expected
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/run?id=x", timeout=5) as response:
            assert response.status == 200
        assert _small_script_on_a_kept_alive_connection_s(port) < 0.02  # Nagle's delay would be >= 0.04 s
    finally:
        process.send_signal(signal.SIGTERM)
        code = process.wait(timeout=30)
    output = process.stdout.read().decode()
    assert f"serving runs under {tree.root} at http://127.0.0.1:{port}" in output
    assert code in (0, -signal.SIGTERM)


def test_the_dashboards_address_for_links_sent_elsewhere() -> None:
    """What a notification links to: the bound address, an IPv6 one in brackets, a bind to every interface by
    this machine's name (0.0.0.0 is no address to send anyone)."""
    import socket

    from app.served import dashboard_url

    assert dashboard_url("127.0.0.1", 8600) == "http://127.0.0.1:8600"
    assert dashboard_url("::1", 8600) == "http://[::1]:8600"
    assert dashboard_url("0.0.0.0", 8501) == dashboard_url("::", 8501) == f"http://{socket.gethostname()}:8501"
