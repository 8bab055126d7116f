"""Logins: scrypt hashes, the users file, the binding policy, and the dashboard's login gate under AppTest."""

from __future__ import annotations

import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
import streamlit as st
from app_support import FixtureTree, build_fixture_tree
from paths import REPO
from streamlit.testing.v1 import AppTest

from app.auth import AccessPolicy, UsersFileError, add_user, hash_secret, is_loopback, load_users, verify_secret

MAIN = str(REPO / "app" / "dashboard" / "main.py")


def test_hash_round_trip_and_rejects_wrong_or_malformed() -> None:
    stored = hash_secret("correct horse battery", n=2**10)
    assert stored.startswith("scrypt$1024$8$1$")
    assert verify_secret("correct horse battery", stored)
    assert not verify_secret("correct horse batterY", stored)
    for broken in ("", "plain", "scrypt$x$8$1$a$b", "md5$1$2$3$4$5", stored.replace("scrypt", "bcrypt")):
        assert not verify_secret("correct horse battery", broken)


def test_users_file_add_replace_and_permissions(tmp_path: Path) -> None:
    path = tmp_path / "conf" / "users"
    add_user(path, "alice", "s3cret-pass")
    add_user(path, "bob", "another-pass")
    add_user(path, "alice", "new-password")
    users = load_users(path)
    assert sorted(users) == ["alice", "bob"]
    assert verify_secret("new-password", users["alice"]) and not verify_secret("s3cret-pass", users["alice"])
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    with pytest.raises(UsersFileError, match="at least 8"):
        add_user(path, "carol", "short")
    with pytest.raises(UsersFileError, match="refusing user name"):
        add_user(path, "eve:admin", "long-enough-pass")


def test_users_file_errors_name_the_bad_lines(tmp_path: Path) -> None:
    path = tmp_path / "users"
    path.write_text("# comment\n\nalice:scrypt$1$2$3$4$5\nbob:plaintext\nnot a line\n")
    with pytest.raises(UsersFileError, match="line 4, line 5"):
        load_users(path)
    with pytest.raises(UsersFileError, match="cannot read"):
        load_users(tmp_path / "missing")


@pytest.mark.parametrize(("host", "local"), [("127.0.0.1", True), ("127.0.1.1", True), ("::1", True),
                                             ("localhost", True), ("0.0.0.0", False), ("", False), (None, False),
                                             ("10.1.2.3", False), ("myhost.lab", False)])
def test_is_loopback(host: str | None, local: bool) -> None:
    assert is_loopback(host) is local


def test_policy_rules(tmp_path: Path) -> None:
    users = tmp_path / "users"
    add_user(users, "alice", "password-1")
    local = AccessPolicy.from_env("127.0.0.1", {})
    assert local.local and not local.actions_need_login and not local.viewing_needs_login
    public = AccessPolicy.from_env("0.0.0.0", {"NNWATCH_USERS_FILE": str(users)})
    assert public.actions_need_login and public.viewing_needs_login
    assert public.check_password("alice", "password-1")
    assert not public.check_password("alice", "password-2") and not public.check_password("mallory", "password-1")
    opened = AccessPolicy.from_env(None, {"NNWATCH_OPEN_VIEW": "1"})
    assert opened.host == "0.0.0.0" and not opened.viewing_needs_login and opened.actions_need_login
    assert not opened.check_password("alice", "password-1")  # no users file: nobody can log in
    allow = AccessPolicy.from_env("0.0.0.0", {"NNWATCH_ALLOWED_EMAILS": "a@lab.org, @uni.edu"})
    assert allow.email_allowed("A@lab.org") and allow.email_allowed("x@uni.edu")
    assert not allow.email_allowed("x@evil.com") and not allow.email_allowed(None)


# -- the gate, in the dashboard --------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def public_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[FixtureTree, Path]]:
    base = tmp_path_factory.mktemp("public")
    built = build_fixture_tree(base)
    users = base / "users"
    add_user(users, "alice", "alice-password")
    with pytest.MonkeyPatch.context() as patch:
        for key, value in built.env.items():
            patch.setenv(key, value)
        patch.setenv("NNWATCH_HOST", "0.0.0.0")
        patch.delenv("NNWATCH_OPEN_VIEW", raising=False)
        patch.delenv("NNWATCH_USERS_FILE", raising=False)
        yield built, users
    st.cache_resource.clear()
    st.cache_data.clear()


def test_public_binding_without_users_shows_only_a_login(public_tree: tuple[FixtureTree, Path]) -> None:
    at = AppTest.from_file(MAIN, default_timeout=60).run()
    assert not at.exception
    assert not at.dataframe, "no run data before a login"
    assert any("log in to see the runs" in i.value for i in at.info)


def test_open_view_shows_runs_but_actions_need_a_login(public_tree: tuple[FixtureTree, Path],
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    tree, users = public_tree
    monkeypatch.setenv("NNWATCH_OPEN_VIEW", "1")
    monkeypatch.setenv("NNWATCH_USERS_FILE", str(users))
    at = AppTest.from_file(MAIN, default_timeout=90).run()
    assert not at.exception and at.dataframe
    at.query_params["id"] = tree.improving
    at.switch_page("views/run.py").run()
    at.button(key="run_extend").click().run()
    at.radio(key="extend_device").set_value("cpu").run()
    assert at.button(key="extend_confirm").disabled
    assert any("Log in (sidebar)" in w.value for w in at.warning)



def test_login_then_extend_records_the_user(public_tree: tuple[FixtureTree, Path],
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    tree, users = public_tree
    monkeypatch.setenv("NNWATCH_USERS_FILE", str(users))
    at = AppTest.from_file(MAIN, default_timeout=90).run()
    assert not at.dataframe
    at.text_input(key="login_user_main").input("alice")
    at.text_input(key="login_secret_main").input("wrong-password")
    at.button(key="FormSubmitter:login_main-Log in").click().run()
    assert any("Wrong user or password" in e.value for e in at.error)
    assert not at.dataframe
    at.text_input(key="login_user_main").input("alice")
    at.text_input(key="login_secret_main").input("alice-password")
    at.button(key="FormSubmitter:login_main-Log in").click().run()
    assert not at.exception
    assert at.dataframe, "the overview after logging in"
    at.query_params["id"] = tree.plateau
    at.switch_page("views/run.py").run()
    at.button(key="run_extend").click().run()
    at.radio(key="extend_device").set_value("cpu").run()
    assert not at.button(key="extend_confirm").disabled
    at.button(key="extend_confirm").click().run()
    assert not at.exception
    from trainer import JobRegistry

    job = JobRegistry(tree.env["NNWATCH_JOBS_DB"]).list_jobs()[0]
    assert job.parent_run_id == tree.plateau and job.requested_by == "alice"
