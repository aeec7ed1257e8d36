"""Fixtures for the auth tests: the local Keycloak (started by scripts/keycloak when none
answers, stopped again at the end if we started it) and SMART clients registered in it."""

from __future__ import annotations

import json
import os
import subprocess
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import requests

from rejection_fhir.fhir.smart import KeyPair, generate_key_pair
from tests.conftest import REPO, unavailable

KEYCLOAK_SCRIPT = REPO / "scripts" / "keycloak"
PORT = os.environ.get("RFHIR_KEYCLOAK_PORT", "").strip() or "8180"
BASE = f"http://127.0.0.1:{PORT}"
REALM = f"{BASE}/realms/rfhir"
TOKEN_URL = f"{REALM}/protocol/openid-connect/token"
JWKS_URI = f"{REALM}/protocol/openid-connect/certs"
#: Short on purpose: the refresh test waits for a real expiry.
TOKEN_LIFESPAN_S = 10


def _ready() -> bool:
    try:
        return requests.get(f"{REALM}/.well-known/openid-configuration", timeout=5).ok
    except requests.RequestException:
        return False


@pytest.fixture(scope="session")
def keycloak() -> Iterator[str]:
    """The realm URL of a running Keycloak."""
    started = False
    if not _ready():
        try:
            result = subprocess.run(
                ["bash", str(KEYCLOAK_SCRIPT), "start"],
                cwd=REPO,
                stdin=subprocess.DEVNULL,
                capture_output=True,
                text=True,
                timeout=900,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            unavailable(f"Keycloak could not be started: {exc}")
        if result.returncode != 0 or not _ready():
            tail = "\n".join(result.stderr.strip().splitlines()[-15:])
            unavailable(f"Keycloak could not be started (scripts/keycloak start):\n{tail}")
        started = True
    yield REALM
    if started:
        subprocess.run(["bash", str(KEYCLOAK_SCRIPT), "stop"], cwd=REPO, check=False, timeout=120)


@pytest.fixture(scope="session")
def admin(keycloak: str) -> requests.Session:
    """A session holding an admin token for Keycloak's admin REST API."""
    password_file = REPO / ".keycloak" / "admin-password"
    if not password_file.is_file():
        unavailable(f"Keycloak answers but {password_file} is missing (not started by us)")
    reply = requests.post(
        f"{BASE}/realms/master/protocol/openid-connect/token",
        data={
            "grant_type": "password",
            "client_id": "admin-cli",
            "username": "admin",
            "password": password_file.read_text().strip(),
        },
        timeout=30,
    )
    if not reply.ok:
        unavailable(f"cannot log in to Keycloak's admin API: {reply.status_code}")
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {reply.json()['access_token']}"
    return session


@dataclass
class Registered:
    client_id: str
    keys: KeyPair
    key_file: Path


def register_client(
    admin: requests.Session, keys: KeyPair, tmp: Path, *, lifespan: int = TOKEN_LIFESPAN_S
) -> Registered:
    """A confidential client with "Signed JWT" authentication and ``keys``' JWKS inline."""
    client_id = f"rfhir-test-{uuid.uuid4().hex[:8]}"
    representation = {
        "clientId": client_id,
        "enabled": True,
        "publicClient": False,
        "serviceAccountsEnabled": True,
        "standardFlowEnabled": False,
        "directAccessGrantsEnabled": False,
        "clientAuthenticatorType": "client-jwt",
        "attributes": {
            "use.jwks.string": "true",
            "jwks.string": json.dumps(keys.jwks),
            "token.endpoint.auth.signing.alg": keys.algorithm,
            "access.token.lifespan": str(lifespan),
        },
        "optionalClientScopes": ["system/*.rs", "system/QuestionnaireResponse.rs"],
    }
    reply = admin.post(f"{BASE}/admin/realms/rfhir/clients", json=representation, timeout=30)
    assert reply.status_code == 201, reply.text
    key_file = tmp / f"{client_id}.pem"
    key_file.write_bytes(keys.private_pem)
    key_file.chmod(0o600)
    return Registered(client_id, keys, key_file)


@pytest.fixture(scope="session", params=["RS384", "ES384"])
def smart_client(
    request: pytest.FixtureRequest,
    admin: requests.Session,
    tmp_path_factory: pytest.TempPathFactory,
) -> Registered:
    return register_client(admin, generate_key_pair(request.param), tmp_path_factory.mktemp("kc"))
