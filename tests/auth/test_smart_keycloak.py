"""SMART Backend Services against a real authorization server (Keycloak) and a resource
server that trusts only tokens signed by it: private_key_jwt with RS384 and ES384, discovery,
one token for many calls, refresh after a real expiry, refresh on 401, refusals."""

from __future__ import annotations

import time
from pathlib import Path

import jwt
import pytest
import requests

from rejection_fhir.cli import main
from rejection_fhir.errors import AuthError, ExitCode
from rejection_fhir.fhir.smart import SmartBackendAuth, generate_key_pair
from rejection_fhir.settings import load_settings, make_client
from tests.auth.conftest import (
    JWKS_URI,
    REALM,
    TOKEN_LIFESPAN_S,
    TOKEN_URL,
    Registered,
    register_client,
)
from tests.auth.servers import LocalFhir, jwt_checker

pytestmark = pytest.mark.integration


def smart_env(server: LocalFhir, client: Registered, **extra: str) -> dict[str, str]:
    return {
        "RFHIR_SERVER": server.base_url,
        "RFHIR_SMART_CLIENT_ID": client.client_id,
        "RFHIR_SMART_PRIVATE_KEY_FILE": str(client.key_file),
        "RFHIR_SMART_SCOPE": "system/QuestionnaireResponse.rs",
        **extra,
    }


@pytest.fixture
def resource_server(smart_client: Registered):
    checker = jwt_checker(JWKS_URI, REALM, client_id=smart_client.client_id)
    with LocalFhir(check=checker, token_endpoint=TOKEN_URL) as server:
        yield server


def auth_of(client: object) -> SmartBackendAuth:
    auth = client._auth  # type: ignore[attr-defined]
    assert isinstance(auth, SmartBackendAuth)
    return auth


def test_token_is_discovered_obtained_and_reused(
    smart_client: Registered, resource_server: LocalFhir, tmp_path: Path
) -> None:
    settings = load_settings({}, env=smart_env(resource_server, smart_client), cwd=tmp_path)
    with make_client(settings) as client:
        assert client.check_fhir_version() == "4.0.1"
        for _ in range(3):
            assert client.read("Patient", "p1")["id"] == "p1"
        auth = auth_of(client)
        assert auth.token_url() == TOKEN_URL  # found via .well-known/smart-configuration
        assert auth.algorithm == smart_client.keys.algorithm
        assert auth.tokens_fetched == 1
        token = auth.token().reveal()
    accepted = resource_server.credentials(status=200)
    assert len(accepted) == 4 and len(set(accepted)) == 1  # one token (jti) for every call
    claims = jwt.decode(token, options={"verify_signature": False})
    assert claims["azp"] == smart_client.client_id
    assert "system/QuestionnaireResponse.rs" in claims["scope"].split()
    assert claims["exp"] - claims["iat"] == TOKEN_LIFESPAN_S


def test_token_is_refreshed_after_it_really_expired(
    smart_client: Registered, resource_server: LocalFhir, tmp_path: Path
) -> None:
    settings = load_settings({}, env=smart_env(resource_server, smart_client), cwd=tmp_path)
    with make_client(settings) as client:
        client.read("Patient", "p1")
        first = auth_of(client).token().reveal()
        time.sleep(TOKEN_LIFESPAN_S + 1)
        # The old token is now refused by the resource server on its own ...
        stale = requests.get(
            f"{resource_server.base_url}/Patient/p1",
            headers={"Authorization": f"Bearer {first}"},
            timeout=10,
        )
        assert stale.status_code == 401
        # ... and the client fetched a new one before sending, so it met no 401 itself.
        client.read("Patient", "p2")
        assert auth_of(client).tokens_fetched == 2
    ours = [s for s in resource_server.seen if s.path.startswith("/fhir/Patient")]
    assert [s.status for s in ours] == [200, 401, 200]
    assert ours[0].credential != ours[2].credential


def test_a_revoked_token_is_replaced_once_on_401(
    smart_client: Registered, resource_server: LocalFhir, tmp_path: Path
) -> None:
    settings = load_settings({}, env=smart_env(resource_server, smart_client), cwd=tmp_path)
    with make_client(settings) as client:
        client.read("Patient", "p1")
        resource_server.revoked.add(auth_of(client).token().reveal())
        assert client.read("Patient", "p2")["id"] == "p2"
        assert auth_of(client).tokens_fetched == 2
    assert [s.status for s in resource_server.seen] == [200, 401, 200]


def test_configured_token_url_skips_discovery(
    smart_client: Registered, resource_server: LocalFhir, tmp_path: Path
) -> None:
    env = smart_env(resource_server, smart_client, RFHIR_SMART_TOKEN_URL=TOKEN_URL)
    resource_server.token_endpoint = "http://127.0.0.1:9/not-used"
    with make_client(load_settings({}, env=env, cwd=tmp_path)) as client:
        assert client.read("Patient", "p1")["id"] == "p1"


def test_a_key_keycloak_does_not_know_is_refused_with_exit_9(
    admin: requests.Session,
    resource_server: LocalFhir,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    registered = register_client(admin, generate_key_pair("ES384"), tmp_path)
    impostor = generate_key_pair("ES384")
    registered.key_file.write_bytes(impostor.private_pem)  # same client id, another key
    env = smart_env(resource_server, registered, RFHIR_SMART_KEY_ID=registered.keys.kid)
    with (
        pytest.raises(AuthError, match="invalid_client"),
        make_client(load_settings({}, env=env, cwd=tmp_path)) as client,
    ):
        client.read("Patient", "p1")
    assert resource_server.seen == []  # nothing reached the FHIR server without a token

    for name, value in env.items():
        monkeypatch.setenv(name, value)
    response = tmp_path / "qr.json"
    response.write_text(
        '{"resourceType": "QuestionnaireResponse", "status": "completed",'
        ' "questionnaire": "https://elsewhere.example/Questionnaire/x"}'
    )
    with pytest.raises(SystemExit) as caught:
        main(["summarize", "--fetch-questionnaires", str(response)])
    err = capsys.readouterr().err
    assert caught.value.code == ExitCode.AUTH
    assert "error: the SMART token endpoint" in err and "Traceback" not in err
    assert impostor.private_pem.decode().splitlines()[1] not in err
