"""A real Secret Service: gnome-keyring on a private D-Bus session, driven through `connectors.config`.

The child process runs under `dbus-run-session` with HOME and the XDG directories in a temporary
folder, unlocks a fresh login keyring, then adds a connector, reads its secret back (library and
CLI), and removes it. The daemon exits with the bus: nothing is left running.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

from tests.peers import need_binary

ROOT = Path(__file__).resolve().parents[2]
INSTALL = "apt-get install gnome-keyring dbus"

CHILD = textwrap.dedent('''
    import json, os, subprocess, sys
    import keyring
    from connectors import config
    from connectors.config import ConnectorSettings

    backend = config.secure_keyring()
    qual = type(backend).__module__ + "." + type(backend).__qualname__
    assert qual == "keyring.backends.SecretService.Keyring", qual
    # keyring's own choice: the Secret Service itself, or a chain (when keyrings.alt is installed) that
    # secure_keyring() unwrapped to it above.
    assert type(keyring.get_keyring()).__module__ in ("keyring.backends.SecretService", "keyring.backends.chainer")

    # Built at run time: no source line holds it.
    secret = "stanch-FAKE-" + "".join(chr(ord("a") + (i * 7) % 26) for i in range(28))
    done = config.add_connector(ConnectorSettings(name="lab-vault", kind="gateway", url="https://gw.example.test"),
                                lambda: secret + "\\n")
    assert done["keyring_backend"] == qual, done
    assert config.secret_for("lab-vault") == secret
    assert keyring.get_password("stanch", "connector:lab-vault") == secret
    raw = config.config_path().read_bytes()
    assert secret.encode() not in raw, "secret in the settings file"
    assert oct(config.config_path().stat().st_mode & 0o777) == "0o600"

    # The same store through the real command line, in a fresh interpreter.
    def stanch(*argv, stdin=""):
        return subprocess.run([sys.executable, "-m", "tui.cli", *argv], input=stdin, capture_output=True, text=True,
                              timeout=60)
    r = stanch("connector", "test", "lab-vault", "--json")
    assert r.returncode == 0, r.stderr
    doc = json.loads(r.stdout)
    assert doc["ok"] and doc["checks"][2]["detail"] == "read from keyring (" + qual + ")", doc
    assert secret not in r.stdout + r.stderr
    r = stanch("connector", "add", "gh", "--kind", "github", "--url", "https://api.github.test", "--secret-stdin",
               stdin=secret[::-1])
    assert r.returncode == 0, r.stderr
    r = stanch("connector", "list", "--json")
    doc = json.loads(r.stdout)
    assert doc["keyring"] == {"backend": qual, "problem": None}, doc
    assert [c["secret"]["stored"] for c in doc["connectors"]] == [True, True], doc
    assert secret not in r.stdout and secret[::-1] not in r.stdout
    r = stanch("connector", "remove", "gh")
    assert r.returncode == 0 and "secret deleted from the keyring" in r.stdout, r.stdout + r.stderr
    assert keyring.get_password("stanch", "connector:gh") is None

    gone = config.remove_connector("lab-vault")
    assert gone["secret_deleted"] is True, gone
    assert keyring.get_password("stanch", "connector:lab-vault") is None
    assert config.load_all() == {}
    print("SECRET-SERVICE-OK")
''')

SCRIPT = """
set -eu
eval "$(printf 'test-password' | gnome-keyring-daemon --unlock --components=secrets)"
eval "$(gnome-keyring-daemon --start --components=secrets)"
exec "$PYTHON" child.py
"""


def test_add_read_remove_through_a_real_secret_service(tmp_path):
    dbus_run = need_binary("dbus-run-session", INSTALL)
    need_binary("gnome-keyring-daemon", INSTALL)
    home, run_dir = tmp_path / "home", tmp_path / "run"
    for d in (home, run_dir, tmp_path / "config", tmp_path / "data", tmp_path / "cache"):
        d.mkdir(mode=0o700)
    (tmp_path / "child.py").write_text(CHILD)
    env = {k: v for k, v in os.environ.items()
           if k not in ("PYTHON_KEYRING_BACKEND", "DBUS_SESSION_BUS_ADDRESS", "GNOME_KEYRING_CONTROL",
                        "XDG_RUNTIME_DIR", "STANCH_CONFIG_DIR")}
    env.update(HOME=str(home), XDG_CONFIG_HOME=str(tmp_path / "config"), XDG_DATA_HOME=str(tmp_path / "data"),
               XDG_CACHE_HOME=str(tmp_path / "cache"), XDG_RUNTIME_DIR=str(run_dir), PYTHON=sys.executable,
               PYTHONPATH=str(ROOT) + os.pathsep + env.get("PYTHONPATH", ""))
    r = subprocess.run([dbus_run, "--", "bash", "-c", SCRIPT], cwd=tmp_path, env=env, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0 and "SECRET-SERVICE-OK" in r.stdout, r.stdout + r.stderr
    # The settings went where XDG_CONFIG_HOME says, and hold no connector any more.
    assert (tmp_path / "config" / "stanch" / "connectors.toml").exists()
