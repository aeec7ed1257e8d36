"""How one setting's value is read and checked, wherever it came from (a flag, an
``RFHIR_*`` variable, the config file): text, seconds, counts, booleans, paths, the sync
state location, and secret files.  Each raises :class:`ConfigError` naming where the value
came from (``where``).  Used by :mod:`rejection_fhir.settings`.
"""

from __future__ import annotations

import logging
import os
import stat
from pathlib import Path
from urllib.parse import urlsplit

from rejection_fhir.errors import ConfigError
from rejection_fhir.fhir.auth import Secret

log = logging.getLogger("rejection_fhir.settings")


def nonempty_text(value: object, where: str) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ConfigError(f"{where} must be a non-empty string")
    return value.strip()


def number(value: object, where: str) -> float:
    if isinstance(value, bool):
        raise ConfigError(f"{where} must be a number of seconds, not {value!r}")
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be a number of seconds, not {value!r}") from None
    if not number > 0:
        raise ConfigError(f"{where} must be more than 0 seconds, not {value!r}")
    return number


def count(value: object, where: str) -> int:
    if isinstance(value, bool):
        raise ConfigError(f"{where} must be a whole number, not {value!r}")
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ConfigError(f"{where} must be a whole number, not {value!r}") from None
    if number < 0:
        raise ConfigError(f"{where} cannot be negative")
    return number


def flag(value: object, where: str) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off", ""):
        return False
    raise ConfigError(f"{where} must be true or false, not {value!r}")


def path(value: object, where: str) -> Path:
    return Path(nonempty_text(value, where)).expanduser()


def state(value: object, where: str) -> Path | str:
    """A state file, or a PostgreSQL URL without a password (it would show in ``ps``)."""
    text = nonempty_text(value, where)
    if not text.startswith(("postgresql://", "postgres://")):
        return Path(text).expanduser()
    parts = urlsplit(text)
    if parts.password or "password=" in parts.query:
        raise ConfigError(
            f"the sync state URL from {where} carries a password; it would show in the "
            "process list and shell history",
            hint="put the password in PGPASSFILE (~/.pgpass) or PGPASSWORD instead",
        )
    return text


def read_secret_file(path: Path, where: str) -> Secret:
    try:
        info = path.stat()
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(f"secret file {path} (from {where}) does not exist") from None
    except OSError as exc:
        raise ConfigError(
            f"cannot read secret file {path} (from {where}): {exc.strerror}"
        ) from None
    except UnicodeDecodeError:
        raise ConfigError(f"secret file {path} (from {where}) is not UTF-8 text") from None
    value = text.strip()
    if not value:
        raise ConfigError(f"secret file {path} (from {where}) is empty")
    if "\n" in value:
        raise ConfigError(
            f"secret file {path} (from {where}) has more than one line; it must hold only "
            "the secret"
        )
    if os.name == "posix" and info.st_mode & (stat.S_IRWXG | stat.S_IRWXO):
        log.warning("secret file %s is readable by other users; chmod 600 it", path)
    return Secret(value)
