"""Connector settings (TOML, 0600, no secret) and secrets (a secure keyring or an env var, never plaintext)."""

from __future__ import annotations

import os
import stat
import tomllib

import keyring
import keyring.backend
import keyring.backends.fail
import keyring.backends.null
import pytest
from keyring.backends.chainer import ChainerBackend
from keyring.errors import KeyringLocked, PasswordDeleteError

import connectors.okta
from connectors import config
from connectors.config import ConfigError, ConnectorSettings, KeyringUnavailable
from tests.conftest import fake_token


class InMemoryTestKeyring(keyring.backend.KeyringBackend):
    """TEST DOUBLE standing in for a secure OS keyring (a Secret Service): a dict in this process."""

    priority = 1

    def __init__(self) -> None:
        super().__init__()
        self.store: dict[tuple[str, str], str] = {}

    def get_password(self, service, username):
        return self.store.get((service, username))

    def set_password(self, service, username, password):
        self.store[(service, username)] = password

    def delete_password(self, service, username):
        if (service, username) not in self.store:
            raise PasswordDeleteError("not found")
        del self.store[(service, username)]


class LockedTestKeyring(InMemoryTestKeyring):
    """TEST DOUBLE: a Secret Service whose collection stays locked."""

    def get_password(self, service, username, *more):
        raise KeyringLocked("Failed to unlock the collection!")

    set_password = delete_password = get_password


class LeakyTestKeyring(InMemoryTestKeyring):
    """TEST DOUBLE: a backend whose error message repeats the password it was given."""

    def set_password(self, service, username, password):
        raise RuntimeError(f"could not store {password!r} for {username}")


class PlaintextTestKeyring(InMemoryTestKeyring):
    """TEST DOUBLE shaped like keyrings.alt.file.PlaintextKeyring (same module and name, priority 0.5)."""

    priority = 0.5


PlaintextTestKeyring.__module__ = "keyrings.alt.file"
PlaintextTestKeyring.__qualname__ = PlaintextTestKeyring.__name__ = "PlaintextKeyring"


class LowPriorityTestKeyring(InMemoryTestKeyring):
    """TEST DOUBLE: some third-party backend that does not call itself recommended."""

    priority = 0.2


@pytest.fixture
def cfg_dir(tmp_path, monkeypatch):
    d = tmp_path / "cfg"
    monkeypatch.setenv("STANCH_CONFIG_DIR", str(d))
    return d


@pytest.fixture
def use_keyring():
    """Install a backend instance for the test; restore the previous one afterwards."""
    before = keyring.get_keyring()

    def install(backend):
        keyring.set_keyring(backend)
        return backend

    yield install
    keyring.set_keyring(before)


@pytest.fixture
def store(use_keyring):
    return use_keyring(InMemoryTestKeyring())


def settings(name="okta-prod", kind="okta", url="https://example.okta.test", **kw):
    return ConnectorSettings(name=name, kind=kind, url=url, **kw)


def one_line(msg: str) -> bool:
    return "\n" not in msg and len(msg) < 600


# -- settings file ------------------------------------------------------------------------------


def test_config_dir_resolution(tmp_path, monkeypatch):
    monkeypatch.delenv("STANCH_CONFIG_DIR", raising=False)
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "xdg"))
    assert config.config_path() == tmp_path / "xdg" / "stanch" / "connectors.toml"
    monkeypatch.delenv("XDG_CONFIG_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert config.config_path() == tmp_path / "home" / ".config" / "stanch" / "connectors.toml"
    monkeypatch.setenv("STANCH_CONFIG_DIR", str(tmp_path / "override"))
    assert config.config_path() == tmp_path / "override" / "connectors.toml"


def test_round_trip_mode_0600_and_dir_0700(cfg_dir, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("-----BEGIN CERTIFICATE-----\n")
    full = settings(ca_bundle=str(ca), client_cert=str(ca), client_key=str(ca), client_id="0oa1abc",
                    connect_timeout=3, read_timeout=12.5, concurrency=8, rate_limit=2.5)
    env_only = settings(name="vault_lab", kind="vault", url="http://127.0.0.1:8200", secret_env="VAULT_TOKEN")
    path = config.save_all({"okta-prod": full, "vault_lab": env_only})
    assert path == cfg_dir / "connectors.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(cfg_dir.stat().st_mode) == 0o700
    assert config.load_all() == {"okta-prod": full, "vault_lab": env_only}
    doc = tomllib.loads(path.read_text())
    assert doc["version"] == 1 and doc["connectors"]["vault_lab"] == {
        "kind": "vault", "url": "http://127.0.0.1:8200", "connect_timeout": 10.0, "read_timeout": 30.0,
        "concurrency": 4, "secret_env": "VAULT_TOKEN"}
    assert path.read_text().startswith("# stanch connector settings. No secrets here")
    assert not [p for p in cfg_dir.iterdir() if p.name != "connectors.toml"]  # no temp file left


def test_rewrite_tightens_a_loose_file(cfg_dir):
    path = config.save_all({"a": settings(name="a")})
    os.chmod(path, 0o644)
    config.save_all({"a": settings(name="a"), "b": settings(name="b")})
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_no_file_means_no_connectors(cfg_dir):
    assert config.load_all() == {}
    with pytest.raises(ConfigError, match="no connector named x"):
        config.load("x")


@pytest.mark.parametrize("text, message", [
    ("version = 1\n[connectors.a]\nkind = 'okta'\nurl = 'https://x.test'\napi_token = 'zzz'\n",
     "secret-looking key 'api_token'"),
    ("version = 1\n[connectors.a]\nkind = 'okta'\nurl = 'https://x.test'\nclient_secret = 'zzz'\n",
     "secret-looking key 'client_secret'"),
    ("version = 1\n[connectors.a]\nkind = 'okta'\nurl = 'https://x.test'\ncolour = 'red'\n", "unknown keys colour"),
    ("version = 1\n[connectors.a]\nkind = 'nope'\nurl = 'https://x.test'\n", "unknown kind 'nope'"),
    ("version = 1\n[connectors.a]\nurl = 'https://x.test'\n", "needs kind and url"),
    ("version = 2\n", "settings version 2"),
    ("version = 1\n[connectors\n", "not valid TOML"),
])
def test_bad_settings_file_is_one_line_error(cfg_dir, text, message):
    cfg_dir.mkdir()
    (cfg_dir / "connectors.toml").write_text(text)
    with pytest.raises(ConfigError) as e:
        config.load_all()
    assert message in str(e.value) and one_line(str(e.value))
    assert "zzz" not in str(e.value)


@pytest.mark.parametrize("kw, message", [
    ({"name": "bad name"}, "connector name"),
    ({"name": "x" * 65}, "connector name"),
    ({"kind": "ldap"}, "unknown kind"),
    ({"url": "ftp://x.test"}, "https://"),
    ({"url": "https://"}, "https://"),
    ({"url": "https://x.test/api?token=1"}, r"without \?query"),
    ({"client_key": "/k.pem"}, "client_key needs client_cert"),
    ({"concurrency": 0}, "concurrency"),
    ({"read_timeout": -1}, "read_timeout"),
    ({"rate_limit": 0}, "rate_limit"),
    ({"secret_env": "NOT-A-VAR"}, "not an environment variable name"),
])
def test_settings_validation(kw, message):
    with pytest.raises(ConfigError, match=message):
        settings(**kw).validate()


def test_url_with_a_password_is_refused_without_echoing_it():
    pw = fake_token(salt="u")
    with pytest.raises(ConfigError) as e:
        settings(url=f"https://admin:{pw}@vault.example.test").validate()
    assert pw not in str(e.value) and "must not carry a user or password" in str(e.value)


# -- secrets ------------------------------------------------------------------------------------


def test_add_stores_the_secret_in_the_keyring_and_never_in_the_file(cfg_dir, store):
    secret = fake_token(salt="k")
    done = config.add_connector(settings(), lambda: secret + "\n")
    assert done["keyring_backend"].endswith("InMemoryTestKeyring") and done["secret"] == "keyring"
    assert store.store == {("stanch", "connector:okta-prod"): secret}
    raw = (cfg_dir / "connectors.toml").read_bytes()
    assert secret.encode() not in raw and secret[-12:].encode() not in raw
    assert config.secret_for("okta-prod") == secret
    with pytest.raises(ConfigError, match="already exists"):
        config.add_connector(settings(), lambda: secret)


@pytest.mark.parametrize("backend, why", [
    (keyring.backends.null.Keyring(), "silently drops secrets"),
    (keyring.backends.fail.Keyring(), "no keyring backend is available"),
    (PlaintextTestKeyring(), "keeps secrets in a plaintext file"),
    (LowPriorityTestKeyring(), "not a recommended secure store"),
])
def test_insecure_backends_are_refused_before_the_secret_is_asked(cfg_dir, use_keyring, backend, why):
    use_keyring(backend)
    asked = []
    with pytest.raises(KeyringUnavailable) as e:
        config.add_connector(settings(), lambda: asked.append(1) or "never")
    msg = str(e.value)
    assert why in msg and one_line(msg)
    assert "gnome-keyring" in msg and "--secret-env VAR" in msg
    assert asked == [] and not (cfg_dir / "connectors.toml").exists()
    with pytest.raises(KeyringUnavailable, match=why):
        config.read_stored_secret("okta-prod")


def test_default_test_environment_is_refused():
    # tests/conftest.py selects keyring's null backend: that must count as "no secure store".
    assert os.environ["PYTHON_KEYRING_BACKEND"] == "keyring.backends.null.Keyring"
    name, problem = config.keyring_backend_name()
    assert name is None and "silently drops secrets" in problem


def test_real_keyrings_alt_plaintext_is_refused_when_installed(use_keyring):
    alt = pytest.importorskip("keyrings.alt.file", reason="keyrings.alt not installed; the look-alike test covers it")
    use_keyring(alt.PlaintextKeyring())
    with pytest.raises(KeyringUnavailable, match="plaintext"):
        config.secure_keyring()


class _TestChain(ChainerBackend):
    """TEST DOUBLE: a chain whose members are given, not discovered."""

    members: list = []

    @property
    def backends(self):
        return self.members


def test_a_chain_never_falls_through_to_plaintext(use_keyring):
    secure, plain = InMemoryTestKeyring(), PlaintextTestKeyring()
    chain = _TestChain()
    chain.members = [plain, secure]
    use_keyring(chain)
    assert config.secure_keyring() is secure
    chain.members = [plain, keyring.backends.null.Keyring()]
    with pytest.raises(KeyringUnavailable, match="no secure keyring backend .found: keyrings.alt.file.PlaintextKeyring"):
        config.secure_keyring()


def test_keyring_errors_become_one_line_user_errors(cfg_dir, use_keyring):
    use_keyring(LockedTestKeyring())
    with pytest.raises(KeyringUnavailable) as e:
        config.add_connector(settings(), lambda: "x" * 20)
    assert "KeyringLocked: Failed to unlock the collection!" in str(e.value) and one_line(str(e.value))
    assert not (cfg_dir / "connectors.toml").exists()


def test_a_backend_error_that_repeats_the_secret_is_redacted(cfg_dir, use_keyring):
    use_keyring(LeakyTestKeyring())
    secret = fake_token(salt="l")
    with pytest.raises(KeyringUnavailable) as e:
        config.add_connector(settings(), lambda: secret)
    assert secret not in str(e.value) and "[redacted]" in str(e.value)
    assert e.value.__cause__ is None and e.value.__suppress_context__


def test_secret_env_is_read_per_run_and_never_stored(cfg_dir, monkeypatch):
    # Works with the null backend: nothing touches the keyring.
    secret = fake_token(salt="e")
    done = config.add_connector(settings(secret_env="OKTA_TOKEN"), None)
    assert done["secret"] == "env:OKTA_TOKEN" and done["keyring_backend"] is None
    assert 'secret_env = "OKTA_TOKEN"' in (cfg_dir / "connectors.toml").read_text()
    with pytest.raises(ConfigError, match="environment variable OKTA_TOKEN is not set"):
        config.secret_for("okta-prod")
    monkeypatch.setenv("OKTA_TOKEN", secret)
    assert config.secret_for("okta-prod") == secret
    assert secret.encode() not in (cfg_dir / "connectors.toml").read_bytes()


def test_explicit_env_var_wins_over_the_keyring_and_is_not_stored(cfg_dir, store, monkeypatch):
    stored, once = fake_token(salt="s"), fake_token(salt="o")
    config.add_connector(settings(), lambda: stored)
    monkeypatch.setenv("ONE_RUN", once)
    assert config.secret_for("okta-prod", "ONE_RUN") == once
    assert store.store == {("stanch", "connector:okta-prod"): stored}
    assert once.encode() not in (cfg_dir / "connectors.toml").read_bytes()


def test_missing_keyring_secret_says_how_to_fix(cfg_dir, store):
    config.add_connector(settings(), lambda: "y" * 20)
    store.store.clear()
    with pytest.raises(ConfigError, match="no secret in the keyring .* pass --secret-env VAR"):
        config.secret_for("okta-prod")


def test_remove_deletes_settings_and_secret(cfg_dir, store):
    config.add_connector(settings(), lambda: "z" * 20)
    config.add_connector(settings(name="other"), lambda: "w" * 20)
    done = config.remove_connector("okta-prod")
    assert done["secret_deleted"] is True
    assert ("stanch", "connector:okta-prod") not in store.store and ("stanch", "connector:other") in store.store
    assert list(config.load_all()) == ["other"]
    with pytest.raises(ConfigError, match="no connector named okta-prod"):
        config.remove_connector("okta-prod")


def test_remove_refuses_to_orphan_a_secret_when_the_keyring_is_unreachable(cfg_dir, store, use_keyring):
    config.add_connector(settings(), lambda: "z" * 20)
    use_keyring(keyring.backends.fail.Keyring())
    with pytest.raises(KeyringUnavailable, match="--keep-secret"):
        config.remove_connector("okta-prod")
    assert list(config.load_all()) == ["okta-prod"]
    assert config.remove_connector("okta-prod", keep_secret=True)["secret_deleted"] is None
    assert config.load_all() == {}


def test_remove_env_connector_needs_no_keyring(cfg_dir):
    config.add_connector(settings(secret_env="T"), None)
    assert config.remove_connector("okta-prod")["secret_deleted"] is None
    assert config.load_all() == {}


# -- check_connector and the whoami hook ----------------------------------------------------------


def test_check_without_a_live_hook(cfg_dir, store, monkeypatch):
    config.add_connector(settings(name="gws", kind="google", url="https://admin.googleapis.com"), lambda: "q" * 20)
    assert config.whoami_hook("oauth") is not None and config.whoami_hook("vault") is not None
    assert config.whoami_hook("okta") is connectors.okta.whoami
    monkeypatch.setattr(config, "whoami_hook", lambda kind: None)  # a kind whose module has no live check
    r = config.check_connector("gws")
    assert r["ok"] is True and r["whoami"] is None
    assert [(c["check"], c["ok"]) for c in r["checks"]] == [
        ("settings", True), ("files", True), ("secret", True), ("live", None)]
    assert r["checks"][-1]["detail"] == "no live check for kind google yet"


def test_check_calls_the_hook_and_scrubs_the_secret(cfg_dir, store, monkeypatch):
    secret = fake_token(salt="h")
    config.add_connector(settings(), lambda: secret)
    seen = []

    def whoami(s, sec):
        seen.append((s.name, sec == secret))
        return {"principal": "ir-bot@example.test", "echo": f"Bearer {sec}"}

    monkeypatch.setattr(connectors.okta, "whoami", whoami, raising=False)
    r = config.check_connector("okta-prod")
    assert seen == [("okta-prod", True)] and r["ok"]
    assert r["whoami"] == {"principal": "ir-bot@example.test", "echo": "Bearer [redacted]"}

    def failing(s, sec):
        raise RuntimeError(f"401 for token {sec}")

    monkeypatch.setattr(connectors.okta, "whoami", failing)
    r = config.check_connector("okta-prod")
    assert r["ok"] is False and r["checks"][-1] == {
        "check": "live", "ok": False, "detail": "whoami failed (RuntimeError: 401 for token [redacted])"}


def test_check_reports_unreadable_files_and_missing_secret(cfg_dir, tmp_path):
    ca = tmp_path / "ca.pem"
    ca.write_text("x")
    config.add_connector(settings(ca_bundle=str(ca), secret_env="NOPE_UNSET"), None)
    ca.unlink()
    r = config.check_connector("okta-prod")
    assert r["ok"] is False
    checks = {c["check"]: c for c in r["checks"]}
    assert checks["files"]["ok"] is False and str(ca) in checks["files"]["detail"]
    assert checks["secret"]["ok"] is False and "NOPE_UNSET is not set" in checks["secret"]["detail"]
    assert "live" not in checks
