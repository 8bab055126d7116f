"""``nnwatch serve`` (the dashboard) and ``nnwatch passwd`` (a dashboard login).

``serve`` starts ``streamlit run app/dashboard/main.py`` as a child process (an argv list, never a shell), through
:mod:`app.dashboard.server`, which opens the runs before the first visitor. The results roots (several joined by
``os.pathsep``) and options pass through the environment, which is the one channel that reaches Streamlit's script
unchanged. It binds to 127.0.0.1 unless told otherwise; bound anywhere else, the dashboard asks for a login before
any action (see :mod:`app.auth`). Ctrl-C or SIGTERM stops the child.
Where a notification config exists, this process also runs the notifier in the background, so messages go out
whether or not a browser is open.
"""

from __future__ import annotations

import argparse
import getpass
import os
import signal
import socket
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from types import FrameType

from app.auth import UsersFileError, add_user, is_loopback
from app.cli.notify import start_background_notifier
from app.served import DEFAULT_PORT, dashboard_url

__all__ = ["add_parsers", "serve_env", "streamlit_argv"]

MAIN_SCRIPT = Path(__file__).resolve().parents[1] / "dashboard" / "main.py"
_THEME = {"base": "light", "primaryColor": "#0F766E", "backgroundColor": "#FFFFFF",
          "secondaryBackgroundColor": "#F4F6F8", "textColor": "#111827"}


def streamlit_argv(host: str, port: int, python: str | None = None) -> list[str]:
    """The child's argv: headless, no file watching (the results tree is not our source), our theme."""
    argv = [python or sys.executable, "-m", "app.dashboard.server", "run", str(MAIN_SCRIPT),
            "--server.address", host, "--server.port", str(port), "--server.headless", "true",
            "--server.fileWatcherType", "none", "--server.runOnSave", "false",
            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "viewer",
            "--global.developmentMode", "false"]
    for key, value in _THEME.items():
        argv += [f"--theme.{key}", value]
    return argv


def serve_env(args: argparse.Namespace, environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The child's environment: ours plus what the dashboard reads (see app/dashboard/settings.py)."""
    env = dict(os.environ if environ is None else environ)
    env["NNWATCH_HOST"] = args.host
    if args.root:
        roots = [args.root] if isinstance(args.root, str) else args.root
        env["NNWATCH_ROOT"] = os.pathsep.join(str(Path(root).expanduser().absolute()) for root in roots)
    if args.jobs_db:
        env["NNWATCH_JOBS_DB"] = str(Path(args.jobs_db).expanduser().absolute())
    if args.users_file:
        env["NNWATCH_USERS_FILE"] = str(Path(args.users_file).expanduser().absolute())
    if args.open_view:
        env["NNWATCH_OPEN_VIEW"] = "1"
    if args.refresh:
        env["NNWATCH_REFRESH_S"] = str(args.refresh)
    if getattr(args, "notify_config", None):
        env["NNWATCH_NOTIFY_CONFIG"] = str(Path(args.notify_config).expanduser().absolute())
    env.setdefault("PYTHONUNBUFFERED", "1")
    return env


def _port_free(host: str, port: int) -> bool:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True


def cmd_serve(args: argparse.Namespace) -> int:
    """Check the options, then run Streamlit until it exits or we are told to stop."""
    named = args.root or ([os.environ["nnUNet_results"]] if os.environ.get("nnUNet_results") else [])
    roots = list(dict.fromkeys(Path(root).expanduser().absolute() for root in named))
    for root in roots:
        if not root.is_dir():
            print(f"nnwatch: error: results root not found or not a folder: {root}", file=sys.stderr)
            return 2
        if os.pathsep in str(root) and len(roots) > 1:
            print(f"nnwatch: error: a results root whose path holds {os.pathsep!r} cannot be served: {root}",
                  file=sys.stderr)
            return 2
    args.root = [str(root) for root in roots]
    if not _port_free(args.host, args.port):
        print(f"nnwatch: error: {args.host}:{args.port} is in use; choose another with --port", file=sys.stderr)
        return 2
    users_file = args.users_file or os.environ.get("NNWATCH_USERS_FILE")
    if not is_loopback(args.host) and not users_file:
        print(f"nnwatch: warning: bound to {args.host} without --users-file: extend and cancel are disabled "
              "(and viewing too unless --open-view) unless OIDC is configured in .streamlit/secrets.toml",
              file=sys.stderr)
    if roots:
        what = "runs under " + ", ".join(str(root) for root in roots)
    else:
        from app.demo import default_demo_dir

        what = (f"bundled demo runs (no --root, no $nnUNet_results), written to {default_demo_dir() / 'nnUNet_results'}"
                " (try `nnwatch scan` on it)")
    url = dashboard_url(args.host, args.port)
    print(f"nnwatch: serving {what} at {url}", file=sys.stderr)
    notifiers = start_background_notifier(args.root, args.notify_config, args.jobs_db, url)
    child = subprocess.Popen(streamlit_argv(args.host, args.port), env=serve_env(args))

    def stop(signum: int, _frame: FrameType | None) -> None:
        child.send_signal(signal.SIGTERM)

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        return child.wait()
    except KeyboardInterrupt:
        child.send_signal(signal.SIGTERM)
        try:
            return child.wait(timeout=10)
        except subprocess.TimeoutExpired:
            child.kill()
            return child.wait()
    finally:
        signal.signal(signal.SIGTERM, previous)
        for notifier in notifiers:
            notifier.stop()


def _default_users_file() -> str:
    if os.environ.get("NNWATCH_USERS_FILE"):
        return os.environ["NNWATCH_USERS_FILE"]
    import platformdirs

    return str(Path(platformdirs.user_config_dir("nnwatch")) / "users")


def cmd_passwd(args: argparse.Namespace) -> int:
    """Add or replace a login; the secret is read without echo (or from stdin with ``--stdin``)."""
    if args.stdin:
        secret = sys.stdin.readline().rstrip("\n")
    else:
        secret = getpass.getpass(f"password or token for {args.user}: ")
        if getpass.getpass("again: ") != secret:
            print("nnwatch: error: the two entries differ", file=sys.stderr)
            return 2
    try:
        add_user(args.users_file, args.user, secret)
    except UsersFileError as exc:
        print(f"nnwatch: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # e.g. the users file or its folder is not writable
        print(f"nnwatch: error: cannot write {args.users_file}: {exc.strerror or exc}", file=sys.stderr)
        return 2
    print(f"nnwatch: {args.user} can log in; serve with --users-file {args.users_file}", file=sys.stderr)
    return 0


def add_parsers(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """Register ``serve`` and ``passwd`` (called by app/cli/main.py)."""
    serve = sub.add_parser("serve", help="the dashboard in your browser (demo runs when no root is set)",
                           description="Start the nnwatch dashboard (Streamlit). Without --root and "
                           "$nnUNet_results it shows bundled demo runs.")
    serve.add_argument("--root", action="append",
                       help="results tree to watch; repeat it to serve several trees together, each run labelled "
                       "with its tree's folder name (default: $nnUNet_results, else demo runs)")
    serve.add_argument("--port", type=int, default=DEFAULT_PORT, help=f"port (default {DEFAULT_PORT})")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to bind (default 127.0.0.1; any other needs --users-file for actions)")
    serve.add_argument("--jobs-db", help="job registry file (default: $NNWATCH_JOBS_DB or the user data folder)")
    serve.add_argument("--users-file", help="logins written by `nnwatch passwd` ($NNWATCH_USERS_FILE)")
    serve.add_argument("--open-view", action="store_true",
                       help="when not on 127.0.0.1: let anyone view; actions still need a login")
    serve.add_argument("--refresh", type=float, default=None, help="seconds between live updates (default 3)")
    serve.add_argument("--notify-config", help="notification rules (default: $NNWATCH_NOTIFY_CONFIG or "
                       "~/.config/nnwatch/notify.toml where it exists); sent from this process, no browser needed")
    serve.set_defaults(handler=cmd_serve)

    passwd = sub.add_parser("passwd", help="add or change a dashboard login (stored as a scrypt hash)")
    passwd.add_argument("user", help="the login name to add or change")
    passwd.add_argument("--users-file", default=_default_users_file(),
                        help="file to update (default: $NNWATCH_USERS_FILE or ~/.config/nnwatch/users)")
    passwd.add_argument("--stdin", action="store_true", help="read the secret from stdin (scripts)")
    passwd.set_defaults(handler=cmd_passwd)
