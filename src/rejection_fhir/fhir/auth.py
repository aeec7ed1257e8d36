"""Credentials that cannot leak by accident.

A :class:`Secret` prints as asterisks in ``str``, ``repr``, f-strings, dataclass reprs and
tracebacks; the only way to the value is :meth:`Secret.reveal`, which is called in exactly
one place per scheme: where the ``Authorization`` header is set.
"""

from __future__ import annotations

import base64
import hmac
from typing import NoReturn

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


def auth_scheme(auth: AuthBase | None) -> str:
    """A name for the scheme in use, safe for messages: ``bearer``, ``basic`` or ``none``."""
    if auth is None:
        return "none"
    return str(getattr(auth, "scheme", type(auth).__name__))
