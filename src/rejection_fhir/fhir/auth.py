"""Credentials that cannot leak by accident.

A :class:`Secret` prints as asterisks in ``str``, ``repr``, f-strings, dataclass reprs and
tracebacks; the only way to the value is :meth:`Secret.reveal`, which is called in exactly
one place per scheme: where the ``Authorization`` header is set.
"""

from __future__ import annotations

import base64
import hmac
from typing import Any, NoReturn, TypeVar

import requests
from requests.auth import AuthBase

_MASK = "********"


class Secret:
    """A token or password.  Never shows its value except through :meth:`reveal`."""

    __slots__ = ("_value",)

    def __init__(self, value: str) -> None:
        if not isinstance(value, str):
            raise TypeError("Secret holds a str")
        self._value = value

    def reveal(self) -> str:
        """The secret itself; only for building an ``Authorization`` header."""
        return self._value

    def __repr__(self) -> str:
        return f"Secret('{_MASK}')"

    def __str__(self) -> str:
        return _MASK

    def __format__(self, format_spec: str) -> str:
        return _MASK

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Secret):
            return NotImplemented
        return hmac.compare_digest(self._value.encode(), other._value.encode())

    def __hash__(self) -> int:
        return hash((Secret, len(self._value)))

    def __bool__(self) -> bool:
        return bool(self._value)

    def __reduce__(self) -> NoReturn:
        # Pickling would write the value to disk or a pipe in the clear.
        raise TypeError("a Secret cannot be pickled")


class BearerAuth(AuthBase):
    """``Authorization: Bearer <token>`` (SMART backend services, static API tokens)."""

    scheme = "bearer"

    def __init__(self, token: Secret) -> None:
        self._token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self._token.reveal()}"
        return request

    def __repr__(self) -> str:
        return "BearerAuth(token=Secret('********'))"

    def secret_values(self) -> tuple[str, ...]:
        """What must never be shown: servers have echoed it back in error bodies."""
        return (self._token.reveal(),)


class BasicAuth(AuthBase):
    """HTTP basic authentication (RFC 7617, UTF-8), for lab servers behind a proxy."""

    scheme = "basic"

    def __init__(self, user: str, password: Secret) -> None:
        if ":" in user:
            # RFC 7617: the user-id cannot contain a colon; the server would split it wrongly.
            raise ValueError("a basic-auth user name cannot contain ':'")
        self.user = user
        self._password = password

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        pair = f"{self.user}:{self._password.reveal()}".encode()
        request.headers["Authorization"] = "Basic " + base64.b64encode(pair).decode("ascii")
        return request

    def __repr__(self) -> str:
        return f"BasicAuth(user={self.user!r}, password=Secret('********'))"

    def secret_values(self) -> tuple[str, ...]:
        """The password and the header value that carries it (servers echo either)."""
        pair = f"{self.user}:{self._password.reveal()}".encode()
        return (self._password.reveal(), base64.b64encode(pair).decode("ascii"))


def auth_scheme(auth: AuthBase | None) -> str:
    """A name for the scheme in use, safe for messages: ``bearer``, ``basic`` or ``none``."""
    if auth is None:
        return "none"
    return str(getattr(auth, "scheme", type(auth).__name__))


T = TypeVar("T")
#: Deeper than this, a server's answer is dropped rather than searched for secrets.
_MAX_DEPTH = 64


def redact(value: T, auth: AuthBase | None) -> T:
    """``value`` (text, or a server's JSON answer) with every credential of ``auth`` masked.

    Some servers and proxies quote the request's ``Authorization`` header or the token in
    their error bodies; the client passes those bodies through this before they can reach
    an exception, a log line or a report.
    """
    values = getattr(auth, "secret_values", None)
    secrets = tuple(v for v in values() if len(v) >= 4) if callable(values) else ()
    if not secrets:
        return value
    return _scrub(value, secrets, 0)  # type: ignore[no-any-return]


def _scrub(value: Any, secrets: tuple[str, ...], depth: int) -> Any:
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, _MASK)
        return value
    if depth > _MAX_DEPTH:
        return None
    if isinstance(value, dict):
        return {key: _scrub(item, secrets, depth + 1) for key, item in value.items()}
    if isinstance(value, list):
        return [_scrub(item, secrets, depth + 1) for item in value]
    return value
