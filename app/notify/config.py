"""The notification rules: a small TOML file, read only when no other user can read it (it holds secrets).

::

    base_url = "http://lab-server:8501"   # where the run-page links point (default: the serving dashboard's
                                          # address; http://127.0.0.1:8501 for a headless `nnwatch notify`)
    quiet_s = 3                           # events to one URL within this window go out as one message

    [[rule]]
    name = "lab"                          # optional; shown on the settings page
    events = ["run_finished", "run_stopped"]   # or ["*"]
    runs = "Dataset004_*"                 # glob on the run id or the dataset (default "*")
    urls = ["json://localhost:8080/hook", "mailto://user:pass@example.org"]
    attach_report = true                  # attach the PNG run report where the channel allows (default true)

Every problem is a :class:`ConfigError` whose message names the file and the line.
"""

from __future__ import annotations

import fnmatch
import os
import re
import stat
import sys
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from app.notify.events import EventKind

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - Python 3.10
    import tomli as tomllib

__all__ = ["ConfigError", "NotifyConfig", "Rule", "default_config_path", "load_config", "parse_config",
           "redact_url"]

_NUMBER = (int, float)
_TOP_KEYS: dict[str, type | tuple[type, ...]] = {"base_url": str, "quiet_s": _NUMBER, "final_dice_wait_s": _NUMBER,
                                                 "jobs_poll_s": _NUMBER, "retry_max_s": _NUMBER}
_RULE_KEYS = {"name", "events", "runs", "urls", "attach_report"}
_ERROR_LINE = re.compile(r"\(at line (\d+), column (\d+)\)")


class ConfigError(ValueError):
    """A config file that cannot be used; the message names the file and, where it can, the line."""


@dataclass(frozen=True)
class Rule:
    """Which events about which runs go to which URLs."""

    name: str
    events: frozenset[EventKind]
    runs: str
    urls: tuple[str, ...]
    attach_report: bool = True
    line: int = 0

    def matches(self, event: EventKind, run_id: str, dataset: str) -> bool:
        if event not in self.events:
            return False
        return fnmatch.fnmatchcase(run_id, self.runs) or (bool(dataset) and fnmatch.fnmatchcase(dataset, self.runs))


@dataclass(frozen=True)
class NotifyConfig:
    """The parsed file: settings and rules, in file order."""

    rules: tuple[Rule, ...]
    base_url: str | None = None  # None: the file names none (see :class:`app.notify.Notifier`)
    quiet_s: float = 3.0
    final_dice_wait_s: float = 1800.0  # a finished run waits this long for its final validation Dice
    jobs_poll_s: float = 3.0
    retry_max_s: float = 300.0
    path: Path | None = None
    text: str = field(default="", repr=False)

    def urls(self) -> list[str]:
        """Every URL of every rule, once, in file order."""
        return list(dict.fromkeys(url for rule in self.rules for url in rule.urls))

    def targets(self, event: EventKind, run_id: str, dataset: str) -> list[tuple[Rule, str]]:
        """``(rule, url)`` pairs an event goes to; a URL named by two matching rules receives it once."""
        seen: dict[str, Rule] = {}
        for rule in self.rules:
            if rule.matches(event, run_id, dataset):
                for url in rule.urls:
                    seen.setdefault(url, rule)
        return [(rule, url) for url, rule in seen.items()]


def default_config_path(environ: Mapping[str, str] | None = None) -> Path:
    """``$NNWATCH_NOTIFY_CONFIG``, else ``notify.toml`` in the user's nnwatch config folder."""
    env = os.environ if environ is None else environ
    if env.get("NNWATCH_NOTIFY_CONFIG"):
        return Path(env["NNWATCH_NOTIFY_CONFIG"]).expanduser().absolute()
    import platformdirs

    return Path(platformdirs.user_config_dir("nnwatch")) / "notify.toml"


def redact_url(url: str) -> str:
    """A URL fit to show: the password of ``user:pass@`` and query values that look secret are hidden."""
    shown = re.sub(r"(://[^/:@]*):[^@/]*@", r"\1:***@", url)
    return re.sub(r"((?:pass|password|token|key|secret|apikey)=)[^&]*", r"\1***", shown, flags=re.I)


def load_config(path: str | os.PathLike[str]) -> NotifyConfig:
    """Read and check a config file; refuse one that every user of the machine may read."""
    file = Path(path).expanduser()
    try:
        info = file.stat()
    except FileNotFoundError:
        raise ConfigError(f"{file}: notification config not found") from None
    if info.st_mode & stat.S_IROTH:
        raise ConfigError(f"{file}: readable by every user of this machine (mode {stat.S_IMODE(info.st_mode):04o}); "
                          f"it holds secrets, so nnwatch will not read it. Run: chmod 600 {file}")
    try:
        text = file.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"{file}: cannot read: {exc}") from None
    return parse_config(text, file)


def parse_config(text: str, path: Path | None = None) -> NotifyConfig:
    """Parse the TOML text of a config (the settings page checks an edit with this before saving)."""
    where = str(path) if path is not None else "config"
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        match = _ERROR_LINE.search(str(exc))
        line = f", line {match.group(1)}" if match else ""
        raise ConfigError(f"{where}{line}: not valid TOML: {_ERROR_LINE.sub('', str(exc)).strip()}") from None
    locator = _Locator(text, where)
    for key, value in data.items():
        if key == "rule":
            continue
        if key not in _TOP_KEYS:
            raise locator.error(f"unknown setting {key!r} (known: rule, {', '.join(sorted(_TOP_KEYS))})", key=key)
        kinds = _TOP_KEYS[key]
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise locator.error(f"{key} must be a {'string' if kinds is str else 'number'}", key=key)
        if isinstance(value, (int, float)) and value < 0:
            raise locator.error(f"{key} must not be negative", key=key)
    raw_rules = data.get("rule", [])
    if not isinstance(raw_rules, list):
        raise locator.error("rules are written as [[rule]] tables", key="rule")
    if not raw_rules:
        raise ConfigError(f"{where}: no [[rule]] table: nothing would be sent")
    rules = tuple(_rule(raw, index, locator) for index, raw in enumerate(raw_rules))
    numbers = {key: float(data[key]) for key in _TOP_KEYS if key != "base_url" and key in data}
    base_url = None if data.get("base_url") is None else str(data["base_url"])
    if base_url is not None and not re.match(r"https?://", base_url):
        raise locator.error("base_url must start with http:// or https://", key="base_url")
    return NotifyConfig(rules=rules, base_url=base_url, path=path, text=text, **numbers)


def _rule(raw: Any, index: int, locator: _Locator) -> Rule:
    line = locator.rule_line(index)
    if not isinstance(raw, dict):
        raise locator.error("a rule must be a [[rule]] table", line=line)
    for key in raw:
        if key not in _RULE_KEYS:
            raise locator.error(f"unknown key {key!r} in rule {index + 1} (known: {', '.join(sorted(_RULE_KEYS))})",
                                key=key, rule=index)
    events = raw.get("events")
    if not isinstance(events, list) or not events or not all(isinstance(e, str) for e in events):
        raise locator.error(f"rule {index + 1}: events must be a list of event names or [\"*\"]",
                            key="events", rule=index)
    if "*" in events:
        kinds = frozenset(EventKind)
    else:
        known = {kind.value for kind in EventKind}
        unknown = [e for e in events if e not in known]
        if unknown:
            raise locator.error(f"rule {index + 1}: unknown event {unknown[0]!r} (known: {', '.join(sorted(known))})",
                                key="events", rule=index)
        kinds = frozenset(EventKind(e) for e in events)
    runs = raw.get("runs", "*")
    if not isinstance(runs, str) or not runs:
        raise locator.error(f"rule {index + 1}: runs must be a glob string such as \"*\" or \"Dataset004_*\"",
                            key="runs", rule=index)
    urls = raw.get("urls")
    if not isinstance(urls, list) or not urls or not all(isinstance(u, str) and "://" in u for u in urls):
        raise locator.error(f"rule {index + 1}: urls must be a list of apprise URLs (scheme://...)",
                            key="urls", rule=index)
    attach = raw.get("attach_report", True)
    if not isinstance(attach, bool):
        raise locator.error(f"rule {index + 1}: attach_report must be true or false", key="attach_report", rule=index)
    name = raw.get("name", f"rule {index + 1}")
    if not isinstance(name, str):
        raise locator.error(f"rule {index + 1}: name must be a string", key="name", rule=index)
    _check_urls(urls, index, locator)
    return Rule(name=name, events=kinds, runs=runs, urls=tuple(urls), attach_report=attach, line=line)


def _check_urls(urls: list[str], index: int, locator: _Locator) -> None:
    """Each URL must be one apprise understands (an unknown scheme is a typo, not an outage)."""
    import apprise

    for url in urls:
        if apprise.Apprise.instantiate(url) is None:
            raise locator.error(f"rule {index + 1}: apprise does not understand the URL {redact_url(url)!r}",
                                key="urls", rule=index)


class _Locator:
    """Finds the line a key sits on, for error messages about values TOML itself accepted."""

    def __init__(self, text: str, where: str) -> None:
        self.lines = text.splitlines()
        self.where = where
        self.rule_starts = [i + 1 for i, line in enumerate(self.lines) if re.match(r"\s*\[\[\s*rule\s*\]\]", line)]

    def rule_line(self, index: int) -> int:
        return self.rule_starts[index] if index < len(self.rule_starts) else 0

    def find(self, key: str, rule: int | None) -> int:
        start = self.rule_line(rule) if rule is not None else 1
        stop = len(self.lines)
        if rule is not None and rule + 1 < len(self.rule_starts):
            stop = self.rule_line(rule + 1) - 1
        if rule is None and self.rule_starts:
            stop = self.rule_starts[0] - 1
        pattern = re.compile(rf"\s*{re.escape(key)}\s*=")
        for number in range(max(start, 1), stop + 1):
            if pattern.match(self.lines[number - 1]):
                return number
        return start if rule is not None else 0

    def error(self, message: str, *, key: str | None = None, rule: int | None = None,
              line: int | None = None) -> ConfigError:
        number = line if line is not None else self.find(key, rule) if key is not None else 0
        return ConfigError(f"{self.where}, line {number}: {message}" if number else f"{self.where}: {message}")
