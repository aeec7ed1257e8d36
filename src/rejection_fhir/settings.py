"""Where the server URL, credentials and knobs come from, and the one place clients are made.

Precedence, highest first:

1. command-line flags (``cli_overrides``; a ``None`` value means "flag not given"),
2. environment variables (``RFHIR_*``, table below),
3. the config file: ``--config`` / ``config_path``, else ``$RFHIR_CONFIG``, else
   ``rejection-fhir.toml`` in the current directory if present,
4. defaults.

===========================  ===================================  ==========================
setting                      environment                          config file key
===========================  ===================================  ==========================
server (FHIR base URL)       RFHIR_SERVER                         server
target (EHR for sync)        RFHIR_TARGET                         target
bearer token                 RFHIR_TOKEN or RFHIR_TOKEN_FILE      token_file
basic user                   RFHIR_BASIC_USER                     basic_user
basic password               RFHIR_BASIC_PASSWORD(_FILE)          password_file
target's token               RFHIR_TARGET_TOKEN(_FILE)            target_token_file
target's basic user          RFHIR_TARGET_BASIC_USER              target_basic_user
target's basic password      RFHIR_TARGET_BASIC_PASSWORD(_FILE)   target_password_file
read timeout, seconds        RFHIR_TIMEOUT                        timeout
connect timeout, seconds     RFHIR_CONNECT_TIMEOUT                connect_timeout
retries                      RFHIR_RETRIES                        retries
retry budget, seconds        RFHIR_RETRY_BUDGET                   retry_budget
private CA bundle (PEM)      RFHIR_CA_BUNDLE                      ca_bundle
allow plain http             RFHIR_INSECURE                       insecure
sync state (file or URL)     RFHIR_STATE                          state
sync write mode              RFHIR_WRITE_MODE                     write_mode
SMART client id              RFHIR_SMART_CLIENT_ID                smart_client_id
SMART private key (PEM)      RFHIR_SMART_PRIVATE_KEY_FILE         smart_private_key_file
SMART key id (JWKS kid)      RFHIR_SMART_KEY_ID                   smart_key_id
SMART token endpoint         RFHIR_SMART_TOKEN_URL                smart_token_url
SMART scope                  RFHIR_SMART_SCOPE                    smart_scope
===========================  ===================================  ==========================

SMART Backend Services (:mod:`rejection_fhir.fhir.smart`) is used when a client id and a
private key file are set; the key file, like every secret, is named only by the environment
or the config file.  Without a token URL the endpoint is discovered from the server's
``.well-known/smart-configuration``.

Secrets come only from environment variables or files, never from the command line (shell
history, ``ps``) nor inline in the config file (it gets committed and shared): the config
file names *files* holding them, and a key such as ``token = "..."`` is refused.  Paths in
the config file are relative to the file's directory.

The config file may hold further tables (``[sync]``, ``[publish]`` ...) for other parts of
the tool; they are kept as plain data in :attr:`Settings.sections`.  To add a top-level
setting, add a :class:`Settings` field and one :data:`_FIELDS` row.

Reading one value (numbers, flags, paths, the state location, secret files) is
:mod:`rejection_fhir.config_values`; the URL rules (http(s) bases, plain http only to
loopback unless ``--insecure``) are :mod:`rejection_fhir.fhir.urls`, re-exported here as
:func:`check_server_url` and :func:`is_loopback`.
"""

from __future__ import annotations

import logging
import os
import tomllib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

from rejection_fhir.config_values import count as _count
from rejection_fhir.config_values import flag as _flag
from rejection_fhir.config_values import nonempty_text as _text
from rejection_fhir.config_values import number as _number
from rejection_fhir.config_values import path as _path
from rejection_fhir.config_values import read_secret_file as _read_secret_file
from rejection_fhir.config_values import state as _state
from rejection_fhir.errors import ConfigError
from rejection_fhir.fhir.auth import BasicAuth, BearerAuth, Secret
from rejection_fhir.fhir.client import FhirClient, RetryPolicy, Timeouts
from rejection_fhir.fhir.smart import DEFAULT_SCOPE, SmartBackendAuth, load_private_key
from rejection_fhir.fhir.urls import check_server_url as check_server_url
from rejection_fhir.fhir.urls import is_loopback as is_loopback
from rejection_fhir.fhir.urls import plain_http_off_loopback, same_origin

log = logging.getLogger("rejection_fhir.settings")

CONFIG_FILENAME = "rejection-fhir.toml"

#: The sync state when none is configured: the one default, for the CLI, its help and
#: :class:`~rejection_fhir.sync.run.SyncOptions` alike.
DEFAULT_STATE_PATH = Path(".state/sync.sqlite3")


def _empty() -> Mapping[str, Any]:
    return MappingProxyType({})


@dataclass(frozen=True)
class Settings:
    """Resolved configuration.  ``repr`` shows secrets as asterisks."""

    server: str | None = None
    target: str | None = None
    token: Secret | None = None
    basic_user: str | None = None
    basic_password: Secret | None = None
    target_token: Secret | None = None
    target_basic_user: str | None = None
    target_basic_password: Secret | None = None
    timeout: float = 60.0
    connect_timeout: float = 10.0
    retries: int = 4
    retry_budget: float = 120.0
    ca_bundle: Path | None = None
    insecure: bool = False
    config_path: Path | None = None
    #: A SQLite file, or a ``postgresql://`` URL (kept as a string).
    state_path: Path | str = DEFAULT_STATE_PATH
    smart_client_id: str | None = None
    smart_private_key_file: Path | None = None
    smart_key_id: str | None = None
    smart_token_url: str | None = None
    smart_scope: str | None = None
    #: How sync writes: ``auto`` (from the server's CapabilityStatement) or one of
    #: :data:`WRITE_MODES` (see :mod:`rejection_fhir.sync.executors`).
    write_mode: str = "auto"
    #: Other tables of the config file, for the modules that own them.
    sections: Mapping[str, Any] = field(default_factory=_empty)
    #: Where each non-default setting came from ("command line", "RFHIR_SERVER", a file).
    sources: Mapping[str, str] = field(default_factory=_empty)


# --------------------------------------------------------------------------- parsing


#: ``write_mode`` values; :class:`rejection_fhir.sync.modes.ExecMode` has the others.
WRITE_MODES = (
    "auto",
    "transaction",
    "batch",
    "conditional",
    "search-then-create",
    "put",
    "ledger-only",
)


def _write_mode(value: object, where: str) -> str:
    text = _text(value, where).strip().lower()
    if text not in WRITE_MODES:
        raise ConfigError(
            f"write mode {value!r} (from {where}) is not one of: {', '.join(WRITE_MODES)}",
            hint="leave it at auto to use what the server's CapabilityStatement says",
        )
    return text


@dataclass(frozen=True)
class _Field:
    """A plain (non-secret) setting: its env variable, config key and parser."""

    name: str
    env: str | None
    config_key: str | None
    parse: Callable[[object, str], Any]
    is_path: bool = False
    #: False for paths to secrets that must come from the environment or config only.
    cli: bool = True


_FIELDS: tuple[_Field, ...] = (
    _Field("server", "RFHIR_SERVER", "server", _text),
    _Field("target", "RFHIR_TARGET", "target", _text),
    _Field("basic_user", "RFHIR_BASIC_USER", "basic_user", _text),
    _Field("target_basic_user", "RFHIR_TARGET_BASIC_USER", "target_basic_user", _text),
    _Field("timeout", "RFHIR_TIMEOUT", "timeout", _number),
    _Field("connect_timeout", "RFHIR_CONNECT_TIMEOUT", "connect_timeout", _number),
    _Field("retries", "RFHIR_RETRIES", "retries", _count),
    _Field("retry_budget", "RFHIR_RETRY_BUDGET", "retry_budget", _number),
    _Field("ca_bundle", "RFHIR_CA_BUNDLE", "ca_bundle", _path, is_path=True),
    _Field("insecure", "RFHIR_INSECURE", "insecure", _flag),
    _Field("state_path", "RFHIR_STATE", "state", _state, is_path=True),
    _Field("write_mode", "RFHIR_WRITE_MODE", "write_mode", _write_mode),
    _Field("smart_client_id", "RFHIR_SMART_CLIENT_ID", "smart_client_id", _text),
    _Field(
        "smart_private_key_file",
        "RFHIR_SMART_PRIVATE_KEY_FILE",
        "smart_private_key_file",
        _path,
        is_path=True,
        cli=False,
    ),
    _Field("smart_key_id", "RFHIR_SMART_KEY_ID", "smart_key_id", _text),
    _Field("smart_token_url", "RFHIR_SMART_TOKEN_URL", "smart_token_url", _text),
    _Field("smart_scope", "RFHIR_SMART_SCOPE", "smart_scope", _text),
)


@dataclass(frozen=True)
class _SecretField:
    """A secret: a value from the environment, or a file named anywhere but inline."""

    name: str
    env_value: str
    env_file: str
    file_key: str  # the config key and the command-line key holding the file's path


_SECRETS: tuple[_SecretField, ...] = (
    _SecretField("token", "RFHIR_TOKEN", "RFHIR_TOKEN_FILE", "token_file"),
    _SecretField(
        "basic_password", "RFHIR_BASIC_PASSWORD", "RFHIR_BASIC_PASSWORD_FILE", "password_file"
    ),
    _SecretField(
        "target_token", "RFHIR_TARGET_TOKEN", "RFHIR_TARGET_TOKEN_FILE", "target_token_file"
    ),
    _SecretField(
        "target_basic_password",
        "RFHIR_TARGET_BASIC_PASSWORD",
        "RFHIR_TARGET_BASIC_PASSWORD_FILE",
        "target_password_file",
    ),
)

#: Command-line keys that could only carry a secret value.
_SECRET_CLI_KEYS = frozenset(
    {"token", "password", "basic_password", "target_token", "target_basic_password", "secret"}
)
#: Keys naming where a secret lives (or a URL such as a token endpoint), not the secret.
_NOT_SECRET_SUFFIXES = ("_file", "_path", "_url", "_uri", "_endpoint")
_SECRET_WORDS = ("token", "password", "passwd", "secret", "api_key", "apikey", "credential")

_CONFIG_KEYS = frozenset(
    {f.config_key for f in _FIELDS if f.config_key} | {s.file_key for s in _SECRETS}
)
_CLI_KEYS = frozenset(
    {f.name for f in _FIELDS if f.cli} | {s.file_key for s in _SECRETS} | {"config"}
)


# --------------------------------------------------------------------------- config file


def _find_config(
    cli: Mapping[str, Any], env: Mapping[str, str], config_path: str | Path | None, cwd: Path
) -> tuple[Path | None, str]:
    explicit = cli.get("config") if cli.get("config") is not None else config_path
    if explicit is not None:
        return Path(explicit).expanduser(), "--config"
    if env.get("RFHIR_CONFIG"):
        return Path(env["RFHIR_CONFIG"]).expanduser(), "RFHIR_CONFIG"
    default = cwd / CONFIG_FILENAME
    return (default, "default") if default.is_file() else (None, "default")


def _refuse_inline_secrets(table: Mapping[str, Any], path: Path, prefix: str = "") -> None:
    for key, value in table.items():
        dotted = f"{prefix}{key}"
        if isinstance(value, Mapping):
            _refuse_inline_secrets(value, path, prefix=f"{dotted}.")
            continue
        lowered = key.lower()
        if lowered.endswith(_NOT_SECRET_SUFFIXES):
            continue
        if any(word in lowered for word in _SECRET_WORDS):
            raise ConfigError(
                f"{path}: '{dotted}' holds a secret inline; config files get committed and "
                "shared, so rejection-fhir does not read secrets from them",
                hint=f"put the secret in a file readable only by you and set "
                f"'{_file_key_for(dotted)} = \"path/to/file\"' instead, or use an RFHIR_* "
                "environment variable",
            )


def _file_key_for(key: str) -> str:
    if "target" in key:
        return "target_password_file" if "pass" in key else "target_token_file"
    return "password_file" if "pass" in key else "token_file"


def _read_config(path: Path, how: str) -> dict[str, Any]:
    try:
        with path.open("rb") as handle:
            data = tomllib.load(handle)
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} (from {how}) does not exist",
            hint=f"create it, or drop {how} to use ./{CONFIG_FILENAME} or defaults",
        ) from None
    except OSError as exc:
        raise ConfigError(f"cannot read config file {path}: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    _refuse_inline_secrets(data, path)
    unknown = sorted(
        key
        for key, value in data.items()
        if key not in _CONFIG_KEYS and not isinstance(value, dict)
    )
    if unknown:
        raise ConfigError(
            f"{path}: unknown setting {', '.join(repr(k) for k in unknown)}",
            hint=f"known settings: {', '.join(sorted(_CONFIG_KEYS))}; tables like [sync] are "
            "free-form",
        )
    return data


# --------------------------------------------------------------------------- secrets


def _resolve_secret(
    spec: _SecretField,
    cli: Mapping[str, Any],
    env: Mapping[str, str],
    config: Mapping[str, Any],
    config_dir: Path | None,
    cwd: Path,
) -> tuple[Secret | None, str | None]:
    if cli.get(spec.file_key) is not None:
        where = f"--{spec.file_key.replace('_', '-')}"
        return _read_secret_file(_abs(_path(cli[spec.file_key], where), cwd), where), where
    from_env = env.get(spec.env_value)
    file_env = env.get(spec.env_file)
    if from_env and file_env:
        raise ConfigError(
            f"both {spec.env_value} and {spec.env_file} are set; set only one of them"
        )
    if from_env:
        return Secret(from_env.strip()), spec.env_value
    if file_env:
        path = _abs(_path(file_env, spec.env_file), cwd)
        return _read_secret_file(path, spec.env_file), spec.env_file
    if config.get(spec.file_key) is not None:
        assert config_dir is not None
        where = f"'{spec.file_key}' in the config file"
        return _read_secret_file(
            _abs(_path(config[spec.file_key], where), config_dir), where
        ), where
    return None, None


def _abs(path: Path, base: Path) -> Path:
    return path if path.is_absolute() else base / path


# --------------------------------------------------------------------------- loading


def load_settings(
    cli_overrides: Mapping[str, Any] | None = None,
    env: Mapping[str, str] = os.environ,
    config_path: str | Path | None = None,
    *,
    cwd: Path | None = None,
) -> Settings:
    """Resolve :class:`Settings` from flags, environment, config file and defaults.

    ``cli_overrides`` keys are :class:`Settings` field names (``server``, ``target``,
    ``timeout``, ``insecure``, ``state_path``, ...) plus ``config``, ``token_file`` and
    ``password_file`` (and their ``target_`` forms); ``None`` values are ignored.  A key
    that could only carry a secret (``token``, ``password``) raises :class:`ConfigError`.
    """
    cli = {key: value for key, value in (cli_overrides or {}).items() if value is not None}
    cwd = cwd or Path.cwd()
    secret_keys = sorted(set(cli) & _SECRET_CLI_KEYS)
    if secret_keys:
        raise ConfigError(
            f"secrets are not accepted on the command line ({', '.join(secret_keys)}): they "
            "end up in shell history and in the process list",
            hint="use RFHIR_TOKEN_FILE / RFHIR_BASIC_PASSWORD_FILE, or --token-file",
        )
    unknown = sorted(set(cli) - _CLI_KEYS)
    if unknown:
        raise ValueError(f"load_settings() got unknown command-line keys: {unknown}")

    found, how = _find_config(cli, env, config_path, cwd)
    config: dict[str, Any] = {}
    config_dir: Path | None = None
    if found is not None:
        found = _abs(found, cwd)
        config = _read_config(found, how)
        config_dir = found.parent
    config_label = str(found) if found else "config file"

    values: dict[str, Any] = {}
    sources: dict[str, str] = {}
    for spec in _FIELDS:
        if spec.name in cli and spec.cli:
            raw, where, base = cli[spec.name], f"--{spec.name.replace('_', '-')}", cwd
        elif spec.env and env.get(spec.env):
            raw, where, base = env[spec.env], spec.env, cwd
        elif spec.config_key and spec.config_key in config:
            raw, where = config[spec.config_key], f"'{spec.config_key}' in {config_label}"
            base = config_dir or cwd
        else:
            continue
        value = spec.parse(raw, where)
        if spec.is_path and isinstance(value, Path):
            value = _abs(value, base)
        values[spec.name] = value
        sources[spec.name] = where

    for secret in _SECRETS:
        secret_value, secret_source = _resolve_secret(secret, cli, env, config, config_dir, cwd)
        if secret_value is not None and secret_source is not None:
            values[secret.name] = secret_value
            sources[secret.name] = secret_source

    insecure = bool(values.get("insecure", False))
    for name in ("server", "target"):
        if name in values:
            values[name] = check_server_url(
                values[name], insecure=insecure, what=f"{name} URL (from {sources[name]})"
            )
    _check_credentials(values, sources, prefix="")
    _check_credentials(values, sources, prefix="target_")
    _check_smart(values, sources, insecure)
    ca_bundle = values.get("ca_bundle")
    if ca_bundle is not None and not Path(ca_bundle).is_file():
        raise ConfigError(
            f"CA bundle {ca_bundle} (from {sources['ca_bundle']}) does not exist",
            hint="give the PEM file of the private CA that signed the server's certificate",
        )

    sections = {key: value for key, value in config.items() if isinstance(value, dict)}
    return Settings(
        **values,
        config_path=found,
        sections=MappingProxyType(sections),
        sources=MappingProxyType(sources),
    )


def _check_smart(values: dict[str, Any], sources: Mapping[str, str], insecure: bool) -> None:
    client_id, key_file = "smart_client_id", "smart_private_key_file"
    if (client_id in values) != (key_file in values):
        have, missing = (
            (client_id, "RFHIR_SMART_PRIVATE_KEY_FILE")
            if client_id in values
            else (key_file, "RFHIR_SMART_CLIENT_ID")
        )
        raise ConfigError(
            f"SMART Backend Services needs a client id and a private key file; only "
            f"{have} is set (from {sources[have]})",
            hint=f"set {missing} too",
        )
    if client_id not in values:
        return
    others = [sources[k] for k in ("token", "basic_user", "basic_password") if k in values]
    if others:
        raise ConfigError(
            f"both SMART Backend Services (from {sources[client_id]}) and static credentials "
            f"(from {', '.join(others)}) are set; use one",
        )
    if not Path(values[key_file]).is_file():
        raise ConfigError(
            f"SMART private key file {values[key_file]} (from {sources[key_file]}) does not exist",
            hint="make a key pair with `rejection-fhir smart-keygen --out DIR`",
        )
    if "smart_token_url" in values:
        values["smart_token_url"] = check_server_url(
            values["smart_token_url"],
            insecure=insecure,
            what=f"SMART token URL (from {sources['smart_token_url']})",
        )


def _check_credentials(values: Mapping[str, Any], sources: Mapping[str, str], prefix: str) -> None:
    token, user, password = (
        f"{prefix}token",
        f"{prefix}basic_user",
        f"{prefix}basic_password",
    )
    if token in values and (user in values or password in values):
        other = sources.get(user) or sources.get(password)
        raise ConfigError(
            f"both a bearer token (from {sources[token]}) and basic credentials (from {other}) "
            "are set; use one",
        )
    if user in values and ":" in values[user]:
        raise ConfigError(
            f"basic user (from {sources[user]}) contains ':', which basic authentication "
            "cannot carry"
        )
    if (user in values) != (password in values):
        have, missing = (user, "password") if user in values else (password, "user")
        raise ConfigError(
            f"basic authentication needs a user and a password; only the {have.split('_')[-1]} "
            f"is set (from {sources[have]})",
            hint=f"set the {missing} too (RFHIR_{prefix.upper()}BASIC_"
            f"{'PASSWORD_FILE' if missing == 'password' else 'USER'})",
        )


# --------------------------------------------------------------------------- the seam


def make_client(settings: Settings, *, server: str | None = None) -> FhirClient:
    """Create the :class:`FhirClient` for *server* (default: ``settings.server``).

    THE SEAM: this is the only place clients are created.  Callers must look it up on the
    module at call time (``from rejection_fhir import settings`` then
    ``settings.make_client(...)``, not ``from rejection_fhir.settings import make_client``)
    so that tests can swap it::

        monkeypatch.setattr("rejection_fhir.settings.make_client", lambda s, **kw: fake)

    Credentials: a URL on ``settings.target``'s origin uses the ``target_*`` credentials
    when any are configured; every other URL uses the main ones.  So the EHR's token is
    never sent to the form server and vice versa (when both are configured).
    """
    url = server or settings.server
    if not url:
        raise ConfigError(
            "no FHIR server configured",
            hint=f'pass --server, set RFHIR_SERVER, or put server = "https://..." in '
            f"{CONFIG_FILENAME}",
        )
    url = check_server_url(url, insecure=settings.insecure)
    use_target = bool(
        settings.target
        and same_origin(url, settings.target)
        and (settings.target_token or settings.target_basic_user)
    )
    token = settings.target_token if use_target else settings.token
    user = settings.target_basic_user if use_target else settings.basic_user
    password = settings.target_basic_password if use_target else settings.basic_password
    auth: BearerAuth | BasicAuth | SmartBackendAuth | None = None
    if token is not None:
        auth = BearerAuth(token)
    elif user is not None and password is not None:
        auth = BasicAuth(user, password)
    elif not use_target and settings.smart_client_id and settings.smart_private_key_file:
        auth = _smart_auth(settings, url)
    if auth is not None and plain_http_off_loopback(url):
        log.warning("sending credentials over plain http to %s (insecure)", urlsplit(url).hostname)
    return FhirClient(
        url,
        auth=auth,
        timeouts=Timeouts(connect=settings.connect_timeout, read=settings.timeout),
        retry=RetryPolicy(retries=settings.retries, budget=settings.retry_budget),
        verify=str(settings.ca_bundle) if settings.ca_bundle else True,
    )


def _smart_auth(settings: Settings, url: str) -> SmartBackendAuth:
    assert settings.smart_client_id and settings.smart_private_key_file
    insecure = settings.insecure

    def check(endpoint: str, what: str) -> str:
        return check_server_url(endpoint, insecure=insecure, what=what)

    return SmartBackendAuth(
        settings.smart_client_id,
        load_private_key(settings.smart_private_key_file),
        key_id=settings.smart_key_id,
        token_url=settings.smart_token_url,
        fhir_base=url,
        scope=settings.smart_scope or DEFAULT_SCOPE,
        verify=str(settings.ca_bundle) if settings.ca_bundle else True,
        timeout=(settings.connect_timeout, settings.timeout),
        check_url=check,
    )
