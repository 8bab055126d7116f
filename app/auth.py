"""Who may act on the dashboard: a users file of scrypt-hashed secrets, checked in constant time.

Why this exists: the dashboard can start multi-day GPU jobs and cancel other people's. Bound to
127.0.0.1 only people with a shell on the machine can reach it, and they could run ``nnwatch extend``
anyway, so no login is asked. Bound to any other address, every action (extend, cancel) needs a login,
and viewing does too unless the operator opens it on purpose (``--open-view``). The actor's name is
written into the job registry (``requested_by``, ``cancel_requested_by``).

The users file (``NNWATCH_USERS_FILE``) has one ``user:hash`` line per person, written by
``nnwatch passwd USER``; the hash is ``scrypt$N$r$p$salt$digest`` (base64, 16-byte salt, 32-byte
digest). The file is re-read on every login, so adding a user needs no restart. Streamlit's own OIDC
login (``st.login``, configured in ``.streamlit/secrets.toml``) is offered as well where configured; the
part that needs Streamlit lives in ``app/dashboard/auth_ui.py``.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import ipaddress
import os
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

__all__ = [
    "AccessPolicy",
    "UsersFileError",
    "add_user",
    "hash_secret",
    "is_loopback",
    "load_users",
    "verify_secret",
]

_USER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
# scrypt cost: N=2^15, r=8 needs 32 MiB per guess and tens of milliseconds, which makes offline guessing expensive.
_N, _R, _P = 2**15, 8, 1
_MAXMEM = 128 * 1024 * 1024
# Verified against when the user is unknown, so a wrong name costs the same time as a wrong password.
_DUMMY = "scrypt$32768$8$1$AAAAAAAAAAAAAAAAAAAAAA==$AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA="


class UsersFileError(ValueError):
    """The users file is missing or has lines that are not ``user:scrypt$...``; the message lists them."""


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_secret(secret: str, *, salt: bytes | None = None, n: int = _N, r: int = _R, p: int = _P) -> str:
    """The stored form of a password or token: ``scrypt$N$r$p$salt$digest``."""
    salt = secrets.token_bytes(16) if salt is None else salt
    digest = hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=_MAXMEM, dklen=32)
    return f"scrypt${n}${r}${p}${_b64(salt)}${_b64(digest)}"


def verify_secret(secret: str, stored: str) -> bool:
    """True when ``secret`` hashes to ``stored``; malformed hashes never match. Constant-time compare."""
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        expected = base64.b64decode(digest, validate=True)
        actual = hashlib.scrypt(secret.encode("utf-8"), salt=base64.b64decode(salt, validate=True), n=int(n),
                                r=int(r), p=int(p), maxmem=_MAXMEM, dklen=len(expected) or 32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(actual, expected)


def load_users(path: str | os.PathLike[str]) -> dict[str, str]:
    """``{user: hash}`` from a users file; blank lines and ``#`` comments are skipped."""
    file = Path(path)
    try:
        text = file.read_text(encoding="utf-8")
    except OSError as exc:
        raise UsersFileError(f"cannot read users file {file}: {exc.strerror or exc}") from exc
    users: dict[str, str] = {}
    bad: list[str] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        user, sep, stored = line.partition(":")
        if not sep or not _USER_RE.match(user) or not stored.startswith("scrypt$") or stored.count("$") != 5:
            bad.append(f"line {number}")
            continue
        users[user] = stored
    if bad:
        raise UsersFileError(f"{file}: expected 'user:scrypt$N$r$p$salt$hash' (write it with "
                             f"`nnwatch passwd USER`); bad: {', '.join(bad)}")
    return users


def add_user(path: str | os.PathLike[str], user: str, secret: str) -> None:
    """Add or replace one user's line; the file is created readable by its owner only."""
    if not _USER_RE.match(user):
        raise UsersFileError(f"refusing user name {user!r}: letters, digits, '_', '.', '@', '-' (max 64)")
    if len(secret) < 8:
        raise UsersFileError("use a password or token of at least 8 characters")
    file = Path(path)
    lines = file.read_text(encoding="utf-8").splitlines() if file.exists() else []
    kept = [line for line in lines if line.split(":", 1)[0].strip() != user]
    kept.append(f"{user}:{hash_secret(secret)}")
    file.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as handle:
        handle.write("\n".join(kept) + "\n")


def is_loopback(host: str | None) -> bool:
    """True for addresses only this machine can reach (127.0.0.0/8, ::1, ``localhost``)."""
    if not host:
        return False  # Streamlit's default (no address) listens on every interface
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@dataclass(frozen=True)
class AccessPolicy:
    """What the current binding requires; built once per server from the environment."""

    host: str
    users_file: Path | None
    open_view: bool
    allowed_emails: tuple[str, ...] = ()

    @classmethod
    def from_env(cls, host: str | None, environ: Mapping[str, str] | None = None) -> AccessPolicy:
        """``host``: the address the server is bound to (None means all interfaces)."""
        env = os.environ if environ is None else environ
        users = env.get("NNWATCH_USERS_FILE")
        allowed = tuple(e.strip().lower() for e in env.get("NNWATCH_ALLOWED_EMAILS", "").split(",") if e.strip())
        return cls(host=host or "0.0.0.0", users_file=Path(users).expanduser() if users else None,
                   open_view=env.get("NNWATCH_OPEN_VIEW", "") in ("1", "true", "yes"), allowed_emails=allowed)

    @property
    def local(self) -> bool:
        return is_loopback(self.host)

    @property
    def actions_need_login(self) -> bool:
        return not self.local

    @property
    def viewing_needs_login(self) -> bool:
        return not self.local and not self.open_view

    def check_password(self, user: str, secret: str) -> bool:
        """Verify against the users file (re-read each time); unknown users cost as much as known ones."""
        if self.users_file is None:
            return False
        users = load_users(self.users_file)
        stored = users.get(user)
        ok = verify_secret(secret, stored if stored is not None else _DUMMY)
        return ok and stored is not None

    def email_allowed(self, email: str | None) -> bool:
        """OIDC users may act when no allow-list is set, else when their email or @domain is on it."""
        if not self.allowed_emails:
            return True
        if not email:
            return False
        email = email.lower()
        domain = "@" + email.rsplit("@", 1)[-1]
        return email in self.allowed_emails or domain in self.allowed_emails
