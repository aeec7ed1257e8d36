"""SMART Backend Services: OAuth 2.0 client credentials with a signed JWT (``private_key_jwt``).

The flow (SMART App Launch 2.x, "Backend Services"):

1. Find the token endpoint: the configured ``token_url``, else ``token_endpoint`` from
   ``{fhir base}/.well-known/smart-configuration``.
2. Sign a short-lived client assertion (``iss`` = ``sub`` = client id, ``aud`` = token
   endpoint, a fresh ``jti``, ``exp`` at most five minutes ahead) with the client's private
   key: RS384 for an RSA key, ES384 for a P-384 EC key; the header's ``kid`` names the key
   in the JWKS registered with the authorization server.
3. POST ``grant_type=client_credentials`` with the assertion and the scope; the answer is
   a bearer token and its lifetime.

:class:`SmartBackendAuth` is a ``requests`` auth: it keeps the token until shortly before
it expires, then fetches a new one; if the FHIR server still answers 401 it fetches a new
token once and resends the request.  The private key, the assertion and the token are
never logged nor put into an exception's text.

JWTs are made with PyJWT (on ``cryptography``): a well-reviewed encoder for the JOSE
details (base64url, ES384's raw r||s signature form) we should not hand-roll.  authlib's
``PrivateKeyJWT`` would replace only the dozen lines of :meth:`client_assertion`, and as
shipped (1.9) it signs for an hour, and reuses one ``jti`` and ``exp`` for every assertion
once claims are given to shorten that (README, "Library choices").
"""

from __future__ import annotations

import json
import logging
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jwt
import requests
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from requests.auth import AuthBase

from rejection_fhir import __version__
from rejection_fhir.errors import AuthError, ConfigError, ServerUnavailableError
from rejection_fhir.fhir.auth import Secret
from rejection_fhir.fhir.urls import is_loopback

log = logging.getLogger("rejection_fhir.fhir.smart")

CLIENT_ASSERTION_TYPE = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer"
#: Read-only on everything; writing commands need a wider scope (RFHIR_SMART_SCOPE).
DEFAULT_SCOPE = "system/*.rs"
#: The spec caps a client assertion's lifetime at five minutes; we use less.
ASSERTION_LIFETIME_S = 240
#: A token without ``expires_in`` is kept this long.
DEFAULT_TOKEN_LIFETIME_S = 300
#: A longer ``expires_in`` is not believed: the token is fetched again after a day.
MAX_TOKEN_LIFETIME_S = 86_400
#: Refresh this long before expiry (at most; a fifth of a short lifetime otherwise).
REFRESH_MARGIN_S = 30.0

PrivateKey = rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
UrlCheck = Callable[[str, str], str]


# --------------------------------------------------------------------------- keys


def algorithm_for(key: PrivateKey) -> str:
    """RS384 for RSA (2048 bits or more), ES384 for EC on P-384; anything else is refused."""
    if isinstance(key, rsa.RSAPrivateKey):
        if key.key_size < 2048:
            raise ConfigError(f"the SMART private key is RSA-{key.key_size}; use 2048 bits or more")
        return "RS384"
    if isinstance(key, ec.EllipticCurvePrivateKey) and isinstance(key.curve, ec.SECP384R1):
        return "ES384"
    raise ConfigError(
        "the SMART private key must be RSA (for RS384) or EC on P-384 (for ES384)",
        hint="make one with `rejection-fhir smart-keygen --out DIR`",
    )


def load_private_key(path: Path) -> PrivateKey:
    """Read an unencrypted PEM private key; errors name the file, never its content."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise ConfigError(f"SMART private key file {path} does not exist") from None
    except OSError as exc:
        raise ConfigError(f"cannot read SMART private key file {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError(
            f"SMART private key file {path} is encrypted; rejection-fhir needs an unencrypted "
            "PEM key in a file only you can read (chmod 600)"
        ) from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError(
            f"SMART private key file {path} does not hold a PEM private key",
            hint="make one with `rejection-fhir smart-keygen --out DIR`",
        ) from None
    if not isinstance(key, rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey):
        raise ConfigError(f"SMART private key file {path} holds neither an RSA nor an EC key")
    algorithm_for(key)
    return key


def public_jwk(key: PrivateKey, *, kid: str | None = None) -> dict[str, Any]:
    """The public half as a JWK with ``kid`` (default: its RFC 7638 thumbprint), ``alg``, ``use``."""
    algorithm = algorithm_for(key)
    public = key.public_key()
    if isinstance(public, rsa.RSAPublicKey):
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(public))
    else:
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(public))
    jwk["kid"] = kid or thumbprint(jwk)
    jwk["alg"] = algorithm
    jwk["use"] = "sig"
    return dict(jwk)


def thumbprint(jwk: dict[str, Any]) -> str:
    """RFC 7638 JWK thumbprint (SHA-256, base64url): a stable key id."""
    members = ("e", "kty", "n") if jwk["kty"] == "RSA" else ("crv", "kty", "x", "y")
    canonical = json.dumps({m: jwk[m] for m in members}, separators=(",", ":"), sort_keys=True)
    digest = hashes.Hash(hashes.SHA256())
    digest.update(canonical.encode())
    return jwt.utils.base64url_encode(digest.finalize()).decode("ascii")


@dataclass(frozen=True)
class KeyPair:
    private_pem: bytes
    jwks: dict[str, Any]
    kid: str
    algorithm: str


def generate_key_pair(algorithm: str = "RS384") -> KeyPair:
    """A new key for SMART Backend Services: the PEM to keep and the JWKS to register."""
    key: PrivateKey
    if algorithm == "RS384":
        key = rsa.generate_private_key(public_exponent=65537, key_size=3072)
    elif algorithm == "ES384":
        key = ec.generate_private_key(ec.SECP384R1())
    else:
        raise ConfigError(f"unsupported algorithm {algorithm!r}; use RS384 or ES384")
    jwk = public_jwk(key)
    pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return KeyPair(private_pem=pem, jwks={"keys": [jwk]}, kid=jwk["kid"], algorithm=algorithm)


# --------------------------------------------------------------------------- the auth


def _require_https_or_loopback(url: str, what: str) -> str:
    try:
        parts = urlsplit(url)
        host = (parts.hostname or "").lower()
    except ValueError:
        raise ConfigError(f"{what} is not a valid URL") from None
    if parts.scheme == "https" or (parts.scheme == "http" and is_loopback(host)):
        return url
    raise ConfigError(f"{what} {_public(url)} is not an https URL")


def _public(url: str) -> str:
    """scheme://host[:port]/path: no credentials, query or fragment in messages, and short."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        port = f":{parts.port}" if parts.port else ""
    except ValueError:  # a malformed host or port
        return "(an unreadable URL)"
    shown = "".join(c for c in f"{parts.scheme}://{host}{port}{parts.path}" if c.isprintable())
    return shown if len(shown) <= 200 else shown[:197] + "..."


@dataclass
class _Token:
    value: Secret
    refresh_at: float  # monotonic seconds
    scope: str | None


class SmartBackendAuth(AuthBase):
    """``Authorization: Bearer`` with a token from SMART Backend Services, kept until near
    expiry and fetched again on expiry or on a 401 (once per request).

    ``fhir_base`` is where ``.well-known/smart-configuration`` is looked up when no
    ``token_url`` is given.  ``check_url(url, what)`` applies the caller's URL policy to the
    token endpoint (settings: https, or http to loopback, or --insecure); it returns the URL
    or raises :class:`ConfigError`.  ``clock`` (monotonic) and ``wall_clock`` (epoch) are
    injectable for tests.
    """

    scheme = "smart"

    def __init__(
        self,
        client_id: str,
        private_key: PrivateKey,
        *,
        key_id: str | None = None,
        token_url: str | None = None,
        fhir_base: str | None = None,
        scope: str = DEFAULT_SCOPE,
        verify: bool | str = True,
        timeout: tuple[float, float] = (10.0, 30.0),
        check_url: UrlCheck = _require_https_or_loopback,
        session: requests.Session | None = None,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        if not token_url and not fhir_base:
            raise ConfigError("SMART Backend Services needs a token URL or a FHIR base URL")
        self.client_id = client_id
        self._key = private_key
        self.algorithm = algorithm_for(private_key)
        self.key_id = key_id or public_jwk(private_key)["kid"]
        self._token_url = check_url(token_url, "SMART token URL") if token_url else None
        self._fhir_base = fhir_base.rstrip("/") if fhir_base else None
        self.scope = scope
        self._verify = verify
        self._timeout = timeout
        self._check_url = check_url
        self._session = session or requests.Session()
        self._session.headers["User-Agent"] = f"rejection-fhir/{__version__}"
        self._clock = clock
        self._wall_clock = wall_clock
        self._lock = threading.Lock()
        self._token: _Token | None = None
        #: How many tokens were fetched (for tests and --verbose).
        self.tokens_fetched = 0

    def __repr__(self) -> str:
        return f"SmartBackendAuth(client_id={self.client_id!r}, alg={self.algorithm})"

    # ------------------------------------------------------------------ requests hook

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        token = self.token()
        request.headers["Authorization"] = f"Bearer {token.reveal()}"
        request.register_hook("response", self._retry_on_401)  # type: ignore[no-untyped-call]
        return request

    def _retry_on_401(self, response: requests.Response, **kwargs: Any) -> requests.Response:
        if response.status_code != 401:
            return response
        # The token may have been revoked or expired early: fetch a new one and resend once.
        # The resent request goes straight to the adapter, so this hook does not run again.
        log.info("the FHIR server answered 401; fetching a new SMART token and retrying once")
        self.invalidate()
        token = self.token()
        response.content  # noqa: B018 - read the body so the connection can be reused
        response.close()
        retry = response.request.copy()
        retry.headers["Authorization"] = f"Bearer {token.reveal()}"
        connection: Any = response.connection
        answer: requests.Response = connection.send(retry, **kwargs)
        answer.history.append(response)
        answer.request = retry
        return answer

    # ------------------------------------------------------------------ tokens

    def secret_values(self) -> tuple[str, ...]:
        """The current token (see :func:`rejection_fhir.fhir.auth.redact`)."""
        token = self._token
        return (token.value.reveal(),) if token is not None else ()

    def invalidate(self) -> None:
        with self._lock:
            self._token = None

    def token(self) -> Secret:
        """The cached access token, or a new one when none is cached or it is about to expire."""
        with self._lock:
            if self._token is None or self._clock() >= self._token.refresh_at:
                self._token = self._fetch()
            return self._token.value

    def token_url(self) -> str:
        if self._token_url is None:
            self._token_url = self._discover()
        return self._token_url

    def client_assertion(self, audience: str) -> str:
        """A signed JWT proving the client's identity to ``audience`` (the token endpoint)."""
        now = int(self._wall_clock())
        claims = {
            "iss": self.client_id,
            "sub": self.client_id,
            "aud": audience,
            "jti": str(uuid.uuid4()),
            "iat": now,
            "exp": now + ASSERTION_LIFETIME_S,
        }
        headers = {"kid": self.key_id, "typ": "JWT"}
        return jwt.encode(claims, self._key, algorithm=self.algorithm, headers=headers)

    def _discover(self) -> str:
        assert self._fhir_base is not None
        url = f"{self._fhir_base}/.well-known/smart-configuration"
        where = _public(url)
        try:
            raw = self._session.get(
                url,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
                verify=self._verify,
            )
        except requests.exceptions.SSLError:
            raise ServerUnavailableError(
                f"GET {where}: TLS handshake failed (certificate not trusted, expired, or for "
                "another host)",
                hint="for a private CA set ca_bundle / RFHIR_CA_BUNDLE",
            ) from None
        except (requests.exceptions.RequestException, UnicodeError) as exc:
            raise ServerUnavailableError(
                f"GET {where} failed: {type(exc).__name__}",
                hint="check the server URL, or set RFHIR_SMART_TOKEN_URL to skip discovery",
            ) from None
        config = _json_object(raw)
        endpoint = config.get("token_endpoint") if config is not None else None
        if raw.status_code != 200 or not isinstance(endpoint, str) or not endpoint:
            raise ConfigError(
                f"GET {where} answered {raw.status_code} without a token_endpoint; cannot find "
                "where to get a SMART token",
                hint="set RFHIR_SMART_TOKEN_URL (or smart_token_url in the config file)",
            )
        methods = config.get("token_endpoint_auth_methods_supported") if config else None
        if isinstance(methods, list) and "private_key_jwt" not in methods:
            log.warning("%s does not list private_key_jwt among its auth methods", where)
        endpoint = endpoint.strip()
        try:
            urlsplit(endpoint).port  # noqa: B018 - raises ValueError for a malformed URL
        except ValueError:
            endpoint = ""
        if not endpoint.startswith(("https://", "http://")) or len(endpoint) > 2000:
            raise ConfigError(
                f"GET {where} named a token_endpoint that is not an http(s) URL",
                hint="set RFHIR_SMART_TOKEN_URL (or smart_token_url in the config file)",
            )
        return self._check_url(endpoint, "SMART token endpoint (from discovery)")

    def _fetch(self) -> _Token:
        url = self.token_url()
        where = _public(url)
        form = {
            "grant_type": "client_credentials",
            "scope": self.scope,
            "client_assertion_type": CLIENT_ASSERTION_TYPE,
            "client_assertion": self.client_assertion(url),
        }
        started = self._clock()
        try:
            raw = self._session.post(
                url,
                data=form,
                headers={"Accept": "application/json"},
                timeout=self._timeout,
                verify=self._verify,
                allow_redirects=False,
            )
        except requests.exceptions.SSLError:
            raise ServerUnavailableError(
                f"POST {where}: TLS handshake with the token endpoint failed (certificate not "
                "trusted, expired, or for another host)",
                hint="for a private CA set ca_bundle / RFHIR_CA_BUNDLE",
            ) from None
        except (requests.exceptions.RequestException, UnicodeError) as exc:
            # UnicodeError: requests decodes a redirect's Location even when not following it.
            raise ServerUnavailableError(
                f"POST {where} (SMART token endpoint) failed: {type(exc).__name__}",
                hint="check that the authorization server is running and the token URL is right",
            ) from None
        body = _json_object(raw)
        if raw.status_code != 200:
            raise self._refused(raw.status_code, body, where)
        value = body.get("access_token") if body is not None else None
        kind = body.get("token_type") if body is not None else None
        if body is None or not isinstance(value, str) or not value.strip():
            raise AuthError(
                f"POST {where} answered {raw.status_code} without an access_token",
                status=raw.status_code,
                hint="check that the URL is the SMART token endpoint",
            )
        if not isinstance(kind, str) or kind.lower() != "bearer":
            raise AuthError(
                f"POST {where} issued a {str(kind)[:20]!r} token; rejection-fhir needs a bearer "
                "token",
                status=raw.status_code,
            )
        lifetime = body.get("expires_in")
        if isinstance(lifetime, bool) or not isinstance(lifetime, int | float) or lifetime <= 0:
            lifetime = DEFAULT_TOKEN_LIFETIME_S
        lifetime = min(lifetime, MAX_TOKEN_LIFETIME_S)  # also keeps 10**400 out of float()
        margin = min(REFRESH_MARGIN_S, float(lifetime) / 5)
        scope = body.get("scope") if isinstance(body.get("scope"), str) else None
        self.tokens_fetched += 1
        log.debug(
            "SMART token %d for client %s from %s: expires in %s s, scope %s",
            self.tokens_fetched,
            self.client_id,
            where,
            lifetime,
            scope or "(as requested)",
        )
        return _Token(Secret(value.strip()), started + float(lifetime) - margin, scope)

    def _refused(self, status: int, body: dict[str, Any] | None, where: str) -> AuthError:
        error = body.get("error") if body is not None else None
        description = body.get("error_description") if body is not None else None
        said = ""
        if isinstance(error, str) and error:
            said = f": {error[:60]}"
            if isinstance(description, str) and description.strip():
                said += f" ({' '.join(description.split())[:200]})"
        hints = {
            "invalid_client": "the server does not accept this client or its signed JWT: check "
            "RFHIR_SMART_CLIENT_ID, that the JWKS registered there holds this key (kid "
            f"{self.key_id}) and that its clock is right",
            "invalid_scope": f"the client may not ask for scope {self.scope!r}; set "
            "RFHIR_SMART_SCOPE to what it was granted",
            "unauthorized_client": "the client is not allowed the client_credentials grant",
        }
        hint = hints.get(error if isinstance(error, str) else "") or (
            "check the SMART client registration with the authorization server's administrator"
        )
        return AuthError(
            f"the SMART token endpoint {where} refused the token request with {status}{said}",
            status=status,
            hint=hint,
        )


def _json_object(raw: requests.Response) -> dict[str, Any] | None:
    try:
        parsed = raw.json()
    except (ValueError, RecursionError):
        return None
    return parsed if isinstance(parsed, dict) else None
