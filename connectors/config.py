"""Connector settings (a TOML file, no secrets) and connector secrets (the OS keyring only).

A connector is a named way to reach one vendor API: a kind (`okta`, `vault`, ...), a base URL and
non-secret options (CA bundle, client certificate paths, client id, timeouts, concurrency, rate
limit). The settings live in `connectors.toml` in the user config directory, mode 0600:

    $STANCH_CONFIG_DIR/connectors.toml          (tests, or a responder who wants a per-case config)
    $XDG_CONFIG_HOME/stanch/connectors.toml
    ~/.config/stanch/connectors.toml

The file never holds a secret (ARCHITECTURE §3). A secret lives in the OS keyring under service
`stanch`, user `connector:<name>`, or is read for one run from an environment variable
(`secret_env`), never stored. A keyring that would keep the secret in plaintext, or drop it
silently (keyring's fail and null backends, `keyrings.alt` file backends, any backend with a
priority below 1), is refused with a one-line `KeyringUnavailable` that says how to fix it.

Errors here are `ConfigError` (one line for stderr). No message ever contains a secret.

Live checks: a vendor module `connectors.<kind>` may define
`whoami(settings: ConnectorSettings, secret: str) -> dict` (see `WhoamiHook`), which calls the
vendor's "who am I" endpoint with the secret and returns non-secret facts (principal, scopes,
expiry). `whoami_hook(kind)` finds it; `None` means the kind has no live check yet.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.util
import os
import re
import tempfile
import tomllib
from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from pathlib import Path
from typing import Any, Protocol, cast
from urllib.parse import urlsplit

KINDS: tuple[str, ...] = (
    "oauth", "vault", "gateway", "okta", "kong", "keycloak", "github", "aws", "entra", "salesforce", "google",
)
KEYRING_SERVICE = "stanch"
CONFIG_FILENAME = "connectors.toml"
CONFIG_VERSION = 1

_NAME_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_-]{0,63}")
_ENV_RE = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# Keys that would mean someone put a secret in the settings file by hand.
_SECRET_KEY_RE = re.compile(r"(secret|token|password|passwd|api_?key|private_?key|credential)$", re.IGNORECASE)
_ALLOWED_SECRETLIKE = frozenset({"secret_env"})

FIX_KEYRING = ("install and unlock a Secret Service (e.g. `apt-get install gnome-keyring` and log in to a "
               "desktop session), or pass --secret-env VAR to read the secret from an environment variable "
               "for one run")


class ConfigError(Exception):
    """A problem with connector settings or secrets, as one line for stderr. Never carries a secret."""


class KeyringUnavailable(ConfigError):
    """No secure keyring: the active backend would refuse, drop, or store the secret in plaintext."""


@dataclass(frozen=True)
class ConnectorSettings:
    """Everything stanch knows about a connector except its secret."""

    name: str
    kind: str
    url: str
    ca_bundle: str | None = None
    client_cert: str | None = None
    client_key: str | None = None
    client_id: str | None = None
    connect_timeout: float = 10.0
    read_timeout: float = 30.0
    concurrency: int = 4
    rate_limit: float | None = None  # requests per second; None: follow the vendor's headers only
    secret_env: str | None = None  # read the secret from this environment variable, never store it

    def validate(self) -> ConnectorSettings:
        """Return self when every field is well-formed, else raise ConfigError naming the field."""
        check_name(self.name)
        if self.kind not in KINDS:
            raise ConfigError(f"connector {self.name}: unknown kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        check_url(self.url, self.name)
        if self.client_key and not self.client_cert:
            raise ConfigError(f"connector {self.name}: client_key needs client_cert too")
        for label, value in (("ca_bundle", self.ca_bundle), ("client_cert", self.client_cert),
                             ("client_key", self.client_key)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ConfigError(f"connector {self.name}: {label} must be a file path")
        if self.client_id is not None and (not isinstance(self.client_id, str) or not self.client_id.strip()):
            raise ConfigError(f"connector {self.name}: client_id must be non-empty text")
        for label, num in (("connect_timeout", self.connect_timeout), ("read_timeout", self.read_timeout)):
            if isinstance(num, bool) or not isinstance(num, int | float) or not 0 < num <= 3600:
                raise ConfigError(f"connector {self.name}: {label} must be seconds between 0 and 3600")
        if isinstance(self.concurrency, bool) or not isinstance(self.concurrency, int) or not 1 <= self.concurrency <= 64:
            raise ConfigError(f"connector {self.name}: concurrency must be a whole number from 1 to 64")
        if self.rate_limit is not None and (isinstance(self.rate_limit, bool) or not isinstance(
                self.rate_limit, int | float) or not 0 < self.rate_limit <= 10_000):
            raise ConfigError(f"connector {self.name}: rate_limit must be requests per second, above 0")
        if self.secret_env is not None:
            check_env_name(self.secret_env)
        return self

    def missing_files(self) -> list[str]:
        """`label: path` for each configured file that cannot be read now."""
        out = []
        for label, value in (("ca_bundle", self.ca_bundle), ("client_cert", self.client_cert),
                             ("client_key", self.client_key)):
            if value and not os.access(value, os.R_OK):
                out.append(f"{label}: {value}")
        return out

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def check_name(name: str) -> str:
    if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
        raise ConfigError(f"connector name {name!r}: use 1-64 letters, digits, '-' or '_', starting with a "
                          "letter or digit")
    return name


def check_env_name(var: str) -> str:
    if not isinstance(var, str) or not _ENV_RE.fullmatch(var):
        raise ConfigError(f"--secret-env {var!r}: not an environment variable name")
    return var


def check_url(url: str, name: str = "?") -> str:
    if not isinstance(url, str):
        raise ConfigError(f"connector {name}: url must be text")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises ValueError on a bad port)
    except ValueError as e:
        raise ConfigError(f"connector {name}: url {url!r} is not a URL ({e})") from None
    if parts.scheme not in ("https", "http") or not parts.hostname:
        raise ConfigError(f"connector {name}: url must start with https:// (or http:// for a lab) and name a host")
    if parts.username is not None or parts.password is not None:
        # Never echo the URL here: its userinfo may be a secret.
        raise ConfigError(f"connector {name}: url must not carry a user or password; the secret goes in the "
                          "keyring (stanch connector add prompts for it)")
    if parts.query or parts.fragment:
        raise ConfigError(f"connector {name}: url must be a base URL without ?query or #fragment")
    return url


# -- the settings file -------------------------------------------------------------------------


def config_dir() -> Path:
    env = os.environ.get("STANCH_CONFIG_DIR")
    if env:
        return Path(env)
    xdg = os.environ.get("XDG_CONFIG_HOME")
    if xdg and os.path.isabs(xdg):
        return Path(xdg) / "stanch"
    return Path.home() / ".config" / "stanch"


def config_path() -> Path:
    return config_dir() / CONFIG_FILENAME


_FIELDS = {f.name for f in fields(ConnectorSettings)}


def _from_table(name: str, table: Any, path: Path) -> ConnectorSettings:
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [connectors.{name}] must be a table")
    for key in table:
        if key in _ALLOWED_SECRETLIKE:
            continue
        if _SECRET_KEY_RE.search(key):
            raise ConfigError(f"{path}: [connectors.{name}] has a secret-looking key {key!r}; secrets belong in the "
                              f"keyring: delete that line and run `stanch connector remove {name}` then "
                              f"`stanch connector add {name} ...`")
    unknown = sorted(set(table) - _FIELDS - {"name"})
    if unknown:
        raise ConfigError(f"{path}: [connectors.{name}] has unknown keys {', '.join(unknown)}")
    if "name" in table and table["name"] != name:
        raise ConfigError(f"{path}: [connectors.{name}] has name = {table['name']!r}; remove that line")
    if "kind" not in table or "url" not in table:
        raise ConfigError(f"{path}: [connectors.{name}] needs kind and url")
    values = {k: v for k, v in table.items() if k != "name"}
    try:
        return ConnectorSettings(name=name, **values).validate()
    except ConfigError as e:
        raise ConfigError(f"{path}: {e}") from None


def load_all(path: Path | None = None) -> dict[str, ConnectorSettings]:
    """Every configured connector by name; an empty dict when there is no settings file yet."""
    path = path or config_path()
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        return {}
    except OSError as e:
        raise ConfigError(f"{path}: cannot read ({e.strerror or e})") from None
    try:
        doc = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise ConfigError(f"{path}: not valid TOML ({e}); fix it or move it aside") from None
    version = doc.get("version", CONFIG_VERSION)
    if version != CONFIG_VERSION:
        raise ConfigError(f"{path}: settings version {version!r}; this stanch reads version {CONFIG_VERSION}")
    extra = sorted(set(doc) - {"version", "connectors"})
    if extra:
        raise ConfigError(f"{path}: unknown top-level keys {', '.join(extra)}")
    table = doc.get("connectors", {})
    if not isinstance(table, dict):
        raise ConfigError(f"{path}: [connectors] must be a table")
    out = {}
    for name, entry in table.items():
        if not isinstance(name, str) or not _NAME_RE.fullmatch(name):
            raise ConfigError(f"{path}: connector name {name!r} is not valid")
        out[name] = _from_table(name, entry, path)
    return out


def load(name: str, path: Path | None = None) -> ConnectorSettings:
    check_name(name)
    found = load_all(path)
    if name not in found:
        known = ", ".join(sorted(found)) or "none yet"
        raise ConfigError(f"no connector named {name} (configured: {known}); add it with `stanch connector add`")
    return found[name]


def _to_table(s: ConnectorSettings) -> dict[str, Any]:
    # TOML has no null: leave out what is unset.
    return {k: v for k, v in s.as_dict().items() if k != "name" and v is not None}


def save_all(connectors: dict[str, ConnectorSettings], path: Path | None = None) -> Path:
    """Write the settings atomically, mode 0600, in a directory created 0700. Returns the path."""
    import tomli_w

    path = path or config_path()
    doc = {"version": CONFIG_VERSION,
           "connectors": {name: _to_table(s.validate()) for name, s in sorted(connectors.items())}}
    text = ("# stanch connector settings. No secrets here: they live in the OS keyring "
            "(service \"stanch\", user \"connector:<name>\").\n" + tomli_w.dumps(doc))
    try:
        path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=".connectors.", suffix=".tmp", dir=path.parent)  # mode 0600
        try:
            os.fchmod(fd, 0o600)
            with os.fdopen(fd, "w", encoding="utf-8") as fh:
                fh.write(text)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(tmp, path)
        except BaseException:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise
    except OSError as e:
        raise ConfigError(f"{path}: cannot write ({e.strerror or e})") from None
    return path


# -- the keyring -------------------------------------------------------------------------------


def _qualname(obj: Any) -> str:
    cls = obj if isinstance(obj, type) else type(obj)
    return f"{cls.__module__}.{cls.__qualname__}"


def _priority(backend: Any) -> float | None:
    try:
        return float(backend.priority)
    except Exception:
        return None


def why_insecure(backend: Any) -> str | None:
    """Why this keyring backend must not hold a connector secret, or None when it may."""
    name = _qualname(backend)
    module = type(backend).__module__
    if module == "keyring.backends.fail":
        return f"no keyring backend is available ({name})"
    if module == "keyring.backends.null":
        return f"the keyring backend {name} silently drops secrets"
    if "plaintext" in name.lower():
        return f"the keyring backend {name} keeps secrets in a plaintext file"
    if module.startswith("keyrings.alt"):
        return f"the keyring backend {name} keeps secrets in a file of its own, not in a secure store"
    priority = _priority(backend)
    if priority is None:
        return f"the keyring backend {name} is not usable here"
    if priority < 1:
        return f"the keyring backend {name} is not a recommended secure store (priority {priority:g})"
    return None


def _one_line(e: BaseException, secret: str | None = None) -> str:
    text = (str(e).strip().splitlines() or [""])[0]
    if secret:
        text = text.replace(secret, "[redacted]")
    text = text[:200]
    return f"{type(e).__name__}: {text}" if text else type(e).__name__


def secure_keyring() -> Any:
    """The keyring backend that will hold connector secrets, or raise KeyringUnavailable.

    A chain of backends is unwrapped to its best secure member, so a locked Secret Service can never
    fall through to a plaintext file.
    """
    import keyring

    try:
        active = keyring.get_keyring()
    except Exception as e:
        raise KeyringUnavailable(f"cannot open the OS keyring ({_one_line(e)}); {FIX_KEYRING}") from None
    from keyring.backends.chainer import ChainerBackend

    if isinstance(active, ChainerBackend):
        try:
            members = list(active.backends)
        except Exception as e:
            raise KeyringUnavailable(f"cannot open the OS keyring ({_one_line(e)}); {FIX_KEYRING}") from None
        secure = [b for b in members if why_insecure(b) is None]
        if not secure:
            found = ", ".join(_qualname(b) for b in members) or "none"
            raise KeyringUnavailable(f"no secure keyring backend (found: {found}); {FIX_KEYRING}")
        return secure[0]
    why = why_insecure(active)
    if why:
        raise KeyringUnavailable(f"{why}; {FIX_KEYRING}")
    return active


def keyring_backend_name() -> tuple[str | None, str | None]:
    """(backend qualname, None) when a secure keyring is usable, else (None, the one-line reason)."""
    try:
        return _qualname(secure_keyring()), None
    except KeyringUnavailable as e:
        return None, str(e)


def keyring_user(name: str) -> str:
    return f"connector:{check_name(name)}"


def store_secret(name: str, secret: str) -> str:
    """Put the secret in the secure keyring; returns the backend's name."""
    if not isinstance(secret, str) or not secret.strip():
        raise ConfigError(f"connector {name}: the secret is empty")
    backend = secure_keyring()
    try:
        backend.set_password(KEYRING_SERVICE, keyring_user(name), secret)
    except Exception as e:
        raise KeyringUnavailable(f"connector {name}: the keyring refused the secret "
                                 f"({_one_line(e, secret)}); {FIX_KEYRING}") from None
    return _qualname(backend)


def read_stored_secret(name: str) -> str | None:
    """The secret in the secure keyring, or None when none is stored."""
    backend = secure_keyring()
    try:
        value = backend.get_password(KEYRING_SERVICE, keyring_user(name))
    except Exception as e:
        raise KeyringUnavailable(f"connector {name}: cannot read the keyring ({_one_line(e)}); "
                                 f"unlock it, or {FIX_KEYRING}") from None
    return cast("str | None", value)


def delete_secret(name: str) -> bool:
    """Delete the stored secret; True when one was there."""
    backend = secure_keyring()
    user = keyring_user(name)
    try:
        if backend.get_password(KEYRING_SERVICE, user) is None:
            return False
        backend.delete_password(KEYRING_SERVICE, user)
    except Exception as e:
        raise KeyringUnavailable(f"connector {name}: cannot delete the secret from the keyring "
                                 f"({_one_line(e)}); unlock it, or {FIX_KEYRING}") from None
    return True


def secret_source(settings: ConnectorSettings, env_var: str | None = None) -> str:
    """Where `secret_for` will look: `env:VAR` or `keyring`."""
    var = env_var or settings.secret_env
    return f"env:{var}" if var else "keyring"


def secret_for(name: str, env_var: str | None = None, *, settings: ConnectorSettings | None = None) -> str:
    """The connector's secret for this run.

    `env_var` (the CLI's `--secret-env VAR`) wins and is never stored; then the settings'
    `secret_env`; then the secure keyring. Raises ConfigError/KeyringUnavailable, one line, no secret.
    """
    s = settings or load(name)
    var = env_var or s.secret_env
    if var:
        check_env_name(var)
        value = os.environ.get(var, "")
        if not value.strip():
            raise ConfigError(f"connector {name}: environment variable {var} is not set or empty; "
                              f"export it for this run (the secret is read from it, never stored)")
        return value.strip()
    stored = read_stored_secret(name)
    if stored is None or not stored.strip():
        raise ConfigError(f"connector {name}: no secret in the keyring (service {KEYRING_SERVICE!r}, user "
                          f"{keyring_user(name)!r}); run `stanch connector remove {name}` and add it again, "
                          "or pass --secret-env VAR")
    return stored


# -- high-level operations used by the CLI ------------------------------------------------------


def add_connector(settings: ConnectorSettings, read_secret: Callable[[], str] | None,
                  path: Path | None = None) -> dict[str, Any]:
    """Add a connector. `read_secret` is called after every check passed (None with `secret_env`).

    The keyring is checked before the secret is asked for, so nobody types a secret only to have it
    refused. The settings are written after the secret is stored; if that write fails, the stored
    secret is deleted again.
    """
    settings.validate()
    existing = load_all(path)
    if settings.name in existing:
        raise ConfigError(f"connector {settings.name} already exists; `stanch connector remove {settings.name}` "
                          "first to replace it")
    backend = None
    if settings.secret_env is None:
        if read_secret is None:
            raise ConfigError(f"connector {settings.name}: no secret given")
        secure_keyring()
        secret = read_secret()
        if not secret or not secret.strip():
            raise ConfigError(f"connector {settings.name}: the secret is empty")
        backend = store_secret(settings.name, secret.strip())
        del secret
    existing[settings.name] = settings
    try:
        written = save_all(existing, path)
    except ConfigError:
        if backend is not None:
            with contextlib.suppress(Exception):
                delete_secret(settings.name)
        raise
    return {"name": settings.name, "config_file": str(written), "secret": secret_source(settings),
            "keyring_backend": backend}


def remove_connector(name: str, *, keep_secret: bool = False, path: Path | None = None) -> dict[str, Any]:
    """Remove the settings entry and its keyring secret.

    When the secret is in the keyring and the keyring cannot be reached, nothing is removed (so no
    secret is orphaned) unless `keep_secret`.
    """
    connectors = load_all(path)
    if name not in connectors:
        check_name(name)
        raise ConfigError(f"no connector named {name}")
    s = connectors[name]
    deleted: bool | None = None
    if not keep_secret:
        if s.secret_env is None:
            try:
                deleted = delete_secret(name)
            except KeyringUnavailable as e:
                raise KeyringUnavailable(f"{e} (or pass --keep-secret to remove only the settings)") from None
        else:
            # Nothing should be stored, but clear any leftover from an earlier keyring-backed add.
            try:
                deleted = delete_secret(name)
            except KeyringUnavailable:
                deleted = None
    del connectors[name]
    written = save_all(connectors, path)
    return {"name": name, "config_file": str(written), "secret_deleted": deleted}


# -- live checks -------------------------------------------------------------------------------


class WhoamiHook(Protocol):
    """`connectors.<kind>.whoami(settings, secret) -> dict`: ask the vendor who the secret belongs to.

    It must return only non-secret facts (principal, tenant, scopes, expiry) as JSON-ready values,
    raise an exception whose message does not contain the secret when the call fails, and not store
    the secret anywhere.
    """

    def __call__(self, settings: ConnectorSettings, secret: str) -> dict[str, Any]: ...


def whoami_hook(kind: str) -> WhoamiHook | None:
    """The kind's live check, or None when its module does not exist or defines none."""
    if kind not in KINDS:
        raise ConfigError(f"unknown kind {kind!r}")
    modname = f"connectors.{kind}"
    if importlib.util.find_spec(modname) is None:
        return None
    module = importlib.import_module(modname)
    hook = getattr(module, "whoami", None)
    return cast(WhoamiHook, hook) if callable(hook) else None


def scrub(value: Any, secret: str) -> Any:
    """A copy of a JSON-like value with every occurrence of the secret replaced."""
    if isinstance(value, str):
        return value.replace(secret, "[redacted]") if secret else value
    if isinstance(value, dict):
        return {scrub(k, secret): scrub(v, secret) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [scrub(v, secret) for v in value]
    return value


def check_connector(name: str, env_var: str | None = None, path: Path | None = None) -> dict[str, Any]:
    """Check one connector: settings, files, secret, then the kind's live `whoami` if it has one.

    Returns {"name", "kind", "ok", "checks": [{"check", "ok", "detail"}...], "whoami"}; `ok` is
    False when a check failed. Raises ConfigError only when the connector is unknown or the settings
    file cannot be read.
    """
    s = load(name, path)
    checks: list[dict[str, Any]] = []

    def record(check: str, ok: bool | None, detail: str) -> None:
        checks.append({"check": check, "ok": ok, "detail": detail})

    record("settings", True, f"{s.kind} at {s.url}")
    missing = s.missing_files()
    record("files", not missing, "cannot read " + "; ".join(missing) if missing else "readable")
    source = secret_source(s, env_var)
    secret: str | None = None
    try:
        secret = secret_for(name, env_var, settings=s)
        where = source if source != "keyring" else f"keyring ({keyring_backend_name()[0]})"
        record("secret", True, f"read from {where}")
    except ConfigError as e:
        record("secret", False, str(e))
    who: dict[str, Any] | None = None
    if secret is not None and not missing:
        hook = whoami_hook(s.kind)
        if hook is None:
            record("live", None, f"no live check for kind {s.kind} yet")
        else:
            try:
                result = hook(s, secret)
                who = scrub(dict(result), secret)
                record("live", True, "whoami answered")
            except Exception as e:
                record("live", False, f"whoami failed ({_one_line(e, secret)})")
    del secret
    return {"name": name, "kind": s.kind, "ok": all(c["ok"] is not False for c in checks), "checks": checks,
            "whoami": who}
