"""`stanch connector add|list|remove|test`: exit codes, one-line errors, --json, and no secret anywhere."""

from __future__ import annotations

import io
import json
import os
import stat
import subprocess
import sys

import keyring
import pytest

from tests.conftest import fake_token
from tests.connectors.test_config import InMemoryTestKeyring
from tui.cli import main


@pytest.fixture
def cfg_dir(tmp_path, monkeypatch):
    d = tmp_path / "cfg"
    monkeypatch.setenv("STANCH_CONFIG_DIR", str(d))
    return d


@pytest.fixture
def store():
    """TEST DOUBLE keyring (in memory) for in-process runs; restores the previous backend."""
    before = keyring.get_keyring()
    kr = InMemoryTestKeyring()
    keyring.set_keyring(kr)
    yield kr
    keyring.set_keyring(before)


def run(capsys, monkeypatch, *argv, stdin=None):
    if stdin is not None:
        monkeypatch.setattr(sys, "stdin", io.StringIO(stdin))
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def stanch(*argv, stdin="", env=None):
    """The real command in a fresh interpreter: the keyring backend comes from the environment."""
    full = {**os.environ, **(env or {})}
    full = {k: v for k, v in full.items() if v is not None}
    return subprocess.run([sys.executable, "-m", "tui.cli", *argv], input=stdin, capture_output=True, text=True,
                          timeout=120, env=full)


def test_the_parser_offers_every_kind():
    from connectors.config import KINDS
    from tui.cli import CONNECTOR_KINDS

    assert CONNECTOR_KINDS == KINDS


def test_add_list_test_remove_with_a_secure_store(capsys, monkeypatch, cfg_dir, store):
    secret = fake_token(salt="c")
    seen = []
    code, out, err = run(capsys, monkeypatch, "connector", "add", "okta-prod", "--kind", "okta",
                         "--url", "https://example.okta.test", "--client-id", "0oa1", "--secret-stdin",
                         stdin=secret + "\n")
    seen += [out, err]
    assert code == 0 and "added connector okta-prod" in out and "InMemoryTestKeyring" in out
    assert store.store == {("stanch", "connector:okta-prod"): secret}
    path = cfg_dir / "connectors.toml"
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and secret.encode() not in path.read_bytes()

    code, out, err = run(capsys, monkeypatch, "connector", "list", "--json")
    seen += [out, err]
    doc = json.loads(out)
    assert code == 0 and doc["config_file"] == str(path)
    assert doc["keyring"] == {"backend": "tests.connectors.test_config.InMemoryTestKeyring", "problem": None}
    [c] = doc["connectors"]
    assert c["name"] == "okta-prod" and c["client_id"] == "0oa1"
    assert c["secret"] == {"source": "keyring", "env_var": None, "env_set": None, "stored": True}

    code, out, err = run(capsys, monkeypatch, "connector", "list")
    seen += [out, err]
    assert code == 0 and "okta-prod" in out and "keyring: stored" in out

    offline(monkeypatch)
    code, out, err = run(capsys, monkeypatch, "connector", "test", "okta-prod")
    seen += [out, err]
    assert code == 0 and "no live check for kind okta yet" in out and err == ""
    code, out, err = run(capsys, monkeypatch, "connector", "test", "okta-prod", "--json")
    seen += [out, err]
    doc = json.loads(out)
    assert code == 0 and doc["ok"] is True and doc["checks"][2]["check"] == "secret"

    store.store.clear()
    code, out, err = run(capsys, monkeypatch, "connector", "test", "okta-prod")
    assert code == 3 and err.count("\n") == 1 and "stanch: connector okta-prod: secret check failed: no secret in the keyring" in err
    code, out, err = run(capsys, monkeypatch, "connector", "list", "--json")
    assert json.loads(out)["connectors"][0]["secret"]["stored"] is False
    store.store[("stanch", "connector:okta-prod")] = secret

    code, out, err = run(capsys, monkeypatch, "connector", "remove", "okta-prod")
    seen += [out, err]
    assert code == 0 and "secret deleted from the keyring" in out and store.store == {}
    code, out, err = run(capsys, monkeypatch, "connector", "list", "--json")
    assert json.loads(out)["connectors"] == []
    code, out, err = run(capsys, monkeypatch, "connector", "list")
    assert code == 0 and out.startswith("no connectors yet")
    assert not any(secret in text for text in seen)


def test_null_backend_refused_with_one_line_and_nothing_written(cfg_dir):
    secret = fake_token(salt="n")
    r = stanch("connector", "add", "a", "--kind", "vault", "--url", "https://vault.test", "--secret-stdin",
               stdin=secret, env={"PYTHON_KEYRING_BACKEND": "keyring.backends.null.Keyring",
                                  "STANCH_CONFIG_DIR": str(cfg_dir)})
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("stanch: the keyring backend keyring.backends.null.Keyring"
                                                              " silently drops secrets;")
    assert "--secret-env VAR" in r.stderr and "gnome-keyring" in r.stderr and secret not in r.stderr
    assert not cfg_dir.exists()


@pytest.mark.parametrize("backend, why", [
    ("keyring.backends.fail.Keyring", "no keyring backend is available"),
    # No D-Bus session: keyring itself cannot start the Secret Service backend.
    ("keyring.backends.SecretService.Keyring", "cannot open the OS keyring (RuntimeError: Unable to initialize"),
])
def test_unusable_backends_refused_in_a_real_run(cfg_dir, backend, why):
    env = {"PYTHON_KEYRING_BACKEND": backend, "STANCH_CONFIG_DIR": str(cfg_dir), "DBUS_SESSION_BUS_ADDRESS": None}
    r = stanch("connector", "add", "a", "--kind", "vault", "--url", "https://vault.test", "--secret-stdin",
               stdin="s" * 30, env=env)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and why in r.stderr, r.stderr
    assert "s" * 30 not in r.stderr


def offline(monkeypatch):
    """These tests are about settings and secrets, not a vendor: no kind's live check runs (every kind gets one)."""
    monkeypatch.setattr("connectors.config.whoami_hook", lambda kind: None)


def test_secret_env_add_and_test_store_nothing(capsys, monkeypatch, cfg_dir):
    # The default (null) keyring stays untouched: the secret comes from the environment each run.
    offline(monkeypatch)
    secret = fake_token(salt="v")
    code, out, err = run(capsys, monkeypatch, "connector", "add", "lab", "--kind", "kong",
                         "--url", "http://127.0.0.1:8001", "--secret-env", "LAB_VAULT_TOKEN")
    assert code == 0 and "read from $LAB_VAULT_TOKEN at run time, not stored" in out
    assert 'secret_env = "LAB_VAULT_TOKEN"' in (cfg_dir / "connectors.toml").read_text()

    monkeypatch.delenv("LAB_VAULT_TOKEN", raising=False)
    code, out, err = run(capsys, monkeypatch, "connector", "test", "lab")
    assert code == 3 and err.count("\n") == 1 and "LAB_VAULT_TOKEN is not set" in err and "FAIL  secret" in out

    monkeypatch.setenv("LAB_VAULT_TOKEN", secret)
    code, out, err = run(capsys, monkeypatch, "connector", "test", "lab", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["ok"] and doc["checks"][2]["detail"] == "read from env:LAB_VAULT_TOKEN"
    assert doc["checks"][3] == {"check": "live", "ok": None, "detail": "no live check for kind kong yet"}
    code, out, err = run(capsys, monkeypatch, "connector", "list", "--json")
    assert json.loads(out)["connectors"][0]["secret"] == {"source": "env", "env_var": "LAB_VAULT_TOKEN",
                                                          "env_set": True, "stored": None}
    assert secret not in out and secret.encode() not in (cfg_dir / "connectors.toml").read_bytes()
    code, out, err = run(capsys, monkeypatch, "connector", "remove", "lab")
    assert code == 0 and "no keyring secret" in out


def test_test_with_secret_env_for_one_run(capsys, monkeypatch, cfg_dir, store):
    offline(monkeypatch)
    stored, once = fake_token(salt="1"), fake_token(salt="2")
    assert run(capsys, monkeypatch, "connector", "add", "gh", "--kind", "github", "--url", "https://api.github.test",
               "--secret-stdin", stdin=stored)[0] == 0
    monkeypatch.setenv("ONE_RUN", once)
    code, out, err = run(capsys, monkeypatch, "connector", "test", "gh", "--secret-env", "ONE_RUN")
    assert code == 0 and "read from env:ONE_RUN" in out and once not in out
    assert store.store == {("stanch", "connector:gh"): stored}
    assert "ONE_RUN" not in (cfg_dir / "connectors.toml").read_text()


def test_secret_never_printed_when_the_live_check_fails(capsys, monkeypatch, cfg_dir, store):
    import connectors.github

    secret = fake_token(prefix="ghp_", salt="g")
    assert run(capsys, monkeypatch, "connector", "add", "gh", "--kind", "github", "--url", "https://api.github.test",
               "--secret-stdin", stdin=secret)[0] == 0

    def whoami(settings, sec):
        raise RuntimeError(f"Bad credentials for {sec}")

    monkeypatch.setattr(connectors.github, "whoami", whoami, raising=False)
    code, out, err = run(capsys, monkeypatch, "connector", "test", "gh")
    assert code == 3 and secret not in out + err and "[redacted]" in err and err.count("\n") == 1
    monkeypatch.setattr(connectors.github, "whoami", lambda s, sec: {"login": "ir-bot", "token": sec})
    code, out, err = run(capsys, monkeypatch, "connector", "test", "gh", "--json")
    assert code == 0 and json.loads(out)["whoami"] == {"login": "ir-bot", "token": "[redacted]"}
    assert secret not in out


@pytest.mark.parametrize("argv, code, message", [
    (["connector"], 2, "required: SUBCOMMAND"),
    (["connector", "add", "a", "--url", "https://x.test"], 2, "required: --kind"),
    (["connector", "add", "a", "--kind", "ldap", "--url", "https://x.test"], 2, "invalid choice: 'ldap'"),
    (["connector", "add", "a", "--kind", "okta", "--url", "https://x.test", "--secret-stdin", "--secret-env", "V"],
     2, "not allowed with argument"),
    (["connector", "add", "bad name", "--kind", "okta", "--url", "https://x.test", "--secret-env", "V"],
     1, "connector name 'bad name'"),
    (["connector", "add", "a", "--kind", "okta", "--url", "https://x.test", "--client-key", "/k.pem",
      "--secret-env", "V"], 1, "--client-key needs --client-cert"),
    (["connector", "add", "a", "--kind", "okta", "--url", "https://x.test", "--ca-bundle", "/nope/ca.pem",
      "--secret-env", "V"], 1, "--ca-bundle /nope/ca.pem: not a readable file"),
    (["connector", "test", "ghost"], 1, "no connector named ghost"),
    (["connector", "remove", "ghost"], 1, "no connector named ghost"),
    (["connector", "test", "ghost", "--secret-env", "1BAD"], 1, "not an environment variable name"),
])
def test_usage_and_user_errors(capsys, monkeypatch, cfg_dir, argv, code, message):
    if code == 2:
        with pytest.raises(SystemExit) as e:
            main(argv)
        assert e.value.code == 2
        err = capsys.readouterr().err
    else:
        got, out, err = run(capsys, monkeypatch, *argv)
        assert got == 1 and err.count("\n") == 1
    assert message in err, err


def test_no_terminal_no_flag_is_a_user_error(cfg_dir):
    r = stanch("connector", "add", "a", "--kind", "okta", "--url", "https://x.test", stdin="piped",
               env={"STANCH_CONFIG_DIR": str(cfg_dir)})
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "--secret-stdin" in r.stderr
    assert not cfg_dir.exists()


def test_url_password_refused_and_not_echoed(capsys, monkeypatch, cfg_dir):
    pw = fake_token(salt="p")
    code, out, err = run(capsys, monkeypatch, "connector", "add", "a", "--kind", "vault",
                         "--url", f"https://root:{pw}@vault.test", "--secret-env", "V")
    assert code == 1 and pw not in err and "must not carry a user or password" in err


def test_remove_when_keyring_unreachable(capsys, monkeypatch, cfg_dir, store):
    assert run(capsys, monkeypatch, "connector", "add", "a", "--kind", "okta", "--url", "https://x.test",
               "--secret-stdin", stdin="k" * 24)[0] == 0
    import keyring.backends.fail

    keyring.set_keyring(keyring.backends.fail.Keyring())
    code, out, err = run(capsys, monkeypatch, "connector", "remove", "a")
    assert code == 1 and "--keep-secret" in err and err.count("\n") == 1
    code, out, err = run(capsys, monkeypatch, "connector", "list", "--json")
    doc = json.loads(out)
    assert code == 0 and doc["keyring"]["backend"] is None and "no keyring backend" in doc["keyring"]["problem"]
    assert doc["connectors"][0]["secret"]["stored"] is None
    code, out, err = run(capsys, monkeypatch, "connector", "remove", "a", "--keep-secret")
    assert code == 0 and "keyring secret kept" in out
