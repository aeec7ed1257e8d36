"""Real local servers for the auth and TLS tests: a tiny FHIR resource server on loopback
that checks credentials the way a real one does, and a private CA to serve it over TLS.

    with LocalFhir(check=jwt_checker(jwks_uri, issuer)) as server:
        server.base_url   # http://127.0.0.1:<port>/fhir

Every request is recorded (path, the credential it carried, the answer's status), so tests
can count tokens and see retries.  Nothing here is mocked: requests go through sockets.
"""

from __future__ import annotations

import base64
import datetime as dt
import ipaddress
import json
import ssl
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

#: Takes the Authorization header (or None); returns (accepted, a label for the credential).
Check = Callable[[str | None], tuple[bool, str | None]]


@dataclass
class Seen:
    method: str
    path: str
    credential: str | None
    status: int


@dataclass
class LocalFhir:
    """A FHIR-ish server on 127.0.0.1 that answers only requests its ``check`` accepts."""

    check: Check
    token_endpoint: str | None = None
    tls: ssl.SSLContext | None = None
    host: str = "127.0.0.1"
    seen: list[Seen] = field(default_factory=list)
    revoked: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:  # keep test output clean
                pass

            def do_GET(self) -> None:
                server._answer(self)

            def do_POST(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                self.rfile.read(length)
                server._answer(self)

        self._httpd = ThreadingHTTPServer((self.host, 0), Handler)
        if self.tls is not None:
            self._httpd.socket = self.tls.wrap_socket(self._httpd.socket, server_side=True)
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def base_url(self) -> str:
        scheme = "https" if self.tls else "http"
        host = "localhost" if self.tls else self.host
        return f"{scheme}://{host}:{self._httpd.server_address[1]}/fhir"

    def __enter__(self) -> LocalFhir:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def credentials(self, status: int | None = None) -> list[str | None]:
        return [s.credential for s in self.seen if status is None or s.status == status]

    def _answer(self, handler: BaseHTTPRequestHandler) -> None:
        path = handler.path.split("?")[0]
        header = handler.headers.get("Authorization")
        if path == "/fhir/.well-known/smart-configuration":
            body: dict[str, Any] = {
                "token_endpoint": self.token_endpoint,
                "token_endpoint_auth_methods_supported": ["private_key_jwt"],
                "grant_types_supported": ["client_credentials"],
                "capabilities": ["client-confidential-asymmetric"],
            }
            self._send(handler, 200, body, "application/json")
            return
        accepted, label = self.check(header)
        if accepted and header is not None and header.split(" ", 1)[-1] in self.revoked:
            accepted = False
        if not accepted:
            self.seen.append(Seen(handler.command, path, label, 401))
            self._send(
                handler,
                401,
                {
                    "resourceType": "OperationOutcome",
                    "issue": [{"severity": "error", "code": "login", "diagnostics": "denied"}],
                },
                "application/fhir+json",
                {"WWW-Authenticate": 'Bearer error="invalid_token"'},
            )
            return
        self.seen.append(Seen(handler.command, path, label, 200))
        if path == "/fhir/metadata":
            body = {"resourceType": "CapabilityStatement", "fhirVersion": "4.0.1"}
        elif path.startswith("/fhir/Patient/"):
            body = {"resourceType": "Patient", "id": path.rsplit("/", 1)[-1]}
        else:
            body = {"resourceType": "Bundle", "type": "searchset", "total": 0, "entry": []}
        self._send(handler, 200, body, "application/fhir+json")

    @staticmethod
    def _send(
        handler: BaseHTTPRequestHandler,
        status: int,
        body: dict[str, Any],
        content_type: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        data = json.dumps(body).encode()
        handler.send_response(status)
        handler.send_header("Content-Type", content_type)
        handler.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            handler.send_header(name, value)
        handler.end_headers()
        handler.wfile.write(data)


# --------------------------------------------------------------------------- checks


def bearer_checker(token: str) -> Check:
    def check(header: str | None) -> tuple[bool, str | None]:
        given = header[7:] if header and header.startswith("Bearer ") else None
        return given == token, "static" if given == token else None

    return check


def basic_checker(user: str, password: str) -> Check:
    expected = "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()

    def check(header: str | None) -> tuple[bool, str | None]:
        return header == expected, user if header == expected else None

    return check


def jwt_checker(jwks_uri: str, issuer: str, client_id: str | None = None) -> Check:
    """Accept a bearer JWT signed by the authorization server's current keys, not expired,
    from ``issuer`` (and issued to ``client_id``); the label is the token's ``jti``."""
    import jwt

    keys = jwt.PyJWKClient(jwks_uri, cache_keys=True)

    def check(header: str | None) -> tuple[bool, str | None]:
        if not header or not header.startswith("Bearer "):
            return False, None
        token = header[7:]
        try:
            key = keys.get_signing_key_from_jwt(token)
            claims = jwt.decode(
                token,
                key.key,
                algorithms=["RS256", "RS384", "ES256", "ES384", "PS256"],
                issuer=issuer,
                options={"verify_aud": False, "require": ["exp", "iat", "jti"]},
            )
        except jwt.PyJWTError:
            return False, None
        if client_id is not None and claims.get("azp") != client_id:
            return False, None
        return True, str(claims["jti"])

    return check


# --------------------------------------------------------------------------- a private CA


@dataclass(frozen=True)
class PrivateCA:
    ca_pem: Path
    cert_pem: Path
    key_pem: Path

    def server_context(self) -> ssl.SSLContext:
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert_pem, self.key_pem)
        return context


def make_private_ca(folder: Path) -> PrivateCA:
    """A CA and a server certificate it signed for localhost and 127.0.0.1 (PEM files)."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    now = dt.datetime.now(dt.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "rejection-fhir test CA")])
    ca_cert = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(
            x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), critical=False
        )
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(days=1))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    folder.mkdir(parents=True, exist_ok=True)
    ca_pem = folder / "ca.pem"
    ca_pem.write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    cert_pem = folder / "server.pem"
    cert_pem.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_pem = folder / "server-key.pem"
    key_pem.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return PrivateCA(ca_pem, cert_pem, key_pem)
