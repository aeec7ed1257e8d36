"""URL rules: what a FHIR base may look like, when plain http is allowed, which host is
loopback, which origin a URL belongs to, and how a URL may appear in a message.

One home for each rule, so that the settings, the client and SMART Backend Services cannot
disagree (e.g. on whether ``127.example.org`` is loopback: it is not).  Pure; raises
:class:`~rejection_fhir.errors.ConfigError` (exit code CONFIG) for a URL a user gave.
"""

from __future__ import annotations

import ipaddress
import re
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from rejection_fhir.errors import ConfigError

_EXAMPLE = "https://fhir.example.org/fhir"


def is_loopback(host: str) -> bool:
    """localhost, 127.0.0.0/8 or ::1 (by address, never by a name that starts with 127.)."""
    host = host.strip("[]").lower()
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def check_base_url(url: str, *, what: str = "FHIR server URL") -> str:
    """A FHIR base as given: http(s), a host, no credentials, query or fragment.  Returns
    it without a trailing slash, or raises ConfigError."""
    text = url.strip()
    try:
        parts = urlsplit(text)
        host = parts.hostname
    except ValueError:  # urlsplit refuses e.g. a malformed [IPv6] host
        host = None
    if host is None or parts.scheme not in ("http", "https"):
        raise ConfigError(
            f"{what} {strip_query_values(text)!r} is not an http(s) URL",
            hint=f"give the server's FHIR base, e.g. {_EXAMPLE}",
        )
    if parts.username or parts.password:
        raise ConfigError(
            f"{what} must not carry credentials (user:password@host)",
            hint="use RFHIR_BASIC_USER and RFHIR_BASIC_PASSWORD_FILE",
        )
    if parts.query or parts.fragment:
        raise ConfigError(
            f"{what} must not carry a query or fragment",
            hint=f"give only the FHIR base, e.g. {_EXAMPLE}",
        )
    return text.rstrip("/")


def plain_http_off_loopback(url: str) -> bool:
    """``http://`` to a host that is not loopback: what crosses a network unencrypted."""
    try:
        parts = urlsplit(url.strip())
        return parts.scheme == "http" and not is_loopback(parts.hostname or "")
    except ValueError:
        return False


def check_server_url(url: str, *, insecure: bool = False, what: str = "server URL") -> str:
    """:func:`check_base_url`, and the transport policy: plain ``http://`` is allowed to
    loopback addresses only, unless *insecure*: tokens and clients' answers must not cross a
    network unencrypted by accident."""
    checked = check_base_url(url, what=what)
    if not insecure and plain_http_off_loopback(checked):
        raise ConfigError(
            f"refusing plain http:// to {urlsplit(checked).hostname}: tokens and clients' "
            "answers would cross the network unencrypted",
            hint="use https://, or pass --insecure (RFHIR_INSECURE=1) for a lab server on a "
            "network you trust",
        )
    return checked


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) with the default port filled in: where credentials may go."""
    parts = urlsplit(url)
    default_port = 443 if parts.scheme == "https" else 80
    return parts.scheme.lower(), (parts.hostname or "").lower(), parts.port or default_port


def same_origin(left: str, right: str) -> bool:
    return origin(left) == origin(right)


def strip_query_values(url: str | None) -> str:
    """Keep a URL's path and parameter names; drop values (they may identify a patient)."""
    if not url:
        return ""
    try:
        parts = urlsplit(url)
    except ValueError:  # e.g. a malformed [IPv6] host in a server's Location
        return shown(url.split("?", 1)[0])
    names = []
    for name, _value in parse_qsl(parts.query, keep_blank_values=True):
        if name not in names:
            names.append(name)
    query = "&".join(f"{name}=..." for name in names)
    if parts.scheme:
        return shown(urlunsplit((parts.scheme, parts.netloc, parts.path, query, "")))
    return shown(parts.path + (f"?{query}" if query else ""))


#: Control, bidi-override and other invisible characters a hostile server could put in a URL.
_UNSHOWN = re.compile("[\x00-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")


def shown(url: str, limit: int = 300) -> str:
    """A URL from a server as it may appear in a message: visible characters, bounded."""
    url = _UNSHOWN.sub("", url)
    return url if len(url) <= limit else url[: limit - 3] + "..."
