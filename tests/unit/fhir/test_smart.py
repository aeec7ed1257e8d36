"""SMART Backend Services: the client assertion, discovery, the token request, caching,
refresh on expiry and on 401, refusals, and the settings that switch it on (no sockets)."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qs

import jwt
import pytest
import responses

from rejection_fhir.errors import AuthError, ConfigError, ExitCode
from rejection_fhir.fhir.client import FhirClient
from rejection_fhir.fhir.smart import (
    CLIENT_ASSERTION_TYPE,
    SmartBackendAuth,
    generate_key_pair,
    load_private_key,
    public_jwk,
)
from rejection_fhir.settings import load_settings, make_client

BASE = "https://fhir.test/fhir"
TOKEN_URL = "https://auth.test/realms/clinic/protocol/openid-connect/token"
ACCESS = "eyJ-ACCESS-TOKEN-7f3e9a"


class Clock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


@pytest.fixture(scope="module", params=["RS384", "ES384"])
def key_file(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    pair = generate_key_pair(request.param)
    path = tmp_path_factory.mktemp("keys") / f"{request.param}.pem"
    path.write_bytes(pair.private_pem)
    path.chmod(0o600)
    return path


def token_reply(token: str = ACCESS, expires_in: Any = 300, **extra: Any) -> dict[str, Any]:
    return {"access_token": token, "token_type": "Bearer", "expires_in": expires_in, **extra}


def form(call: Any) -> dict[str, str]:
    return {k: v[0] for k, v in parse_qs(call.request.body).items()}


def make_auth(key_file: Path, **kwargs: Any) -> SmartBackendAuth:
    kwargs.setdefault("token_url", TOKEN_URL)
    return SmartBackendAuth("rfhir-sync", load_private_key(key_file), **kwargs)


@responses.activate
def test_token_request_carries_a_signed_assertion_the_server_can_verify(key_file: Path) -> None:
    key = load_private_key(key_file)
    responses.post(TOKEN_URL, json=token_reply(scope="system/QuestionnaireResponse.rs"))
    auth = make_auth(key_file, scope="system/QuestionnaireResponse.rs", wall_clock=lambda: 1.8e9)
    assert auth.token().reveal() == ACCESS

    sent = form(responses.calls[0])
    assert sent["grant_type"] == "client_credentials"
    assert sent["client_assertion_type"] == CLIENT_ASSERTION_TYPE
    assert sent["scope"] == "system/QuestionnaireResponse.rs"
    header = jwt.get_unverified_header(sent["client_assertion"])
    jwk = public_jwk(key)
    assert header["kid"] == jwk["kid"] == auth.key_id
    assert header["alg"] == jwk["alg"] == auth.algorithm
    claims = jwt.decode(
        sent["client_assertion"],
        key.public_key(),
        algorithms=[auth.algorithm],
        audience=TOKEN_URL,
        options={"verify_exp": False, "verify_iat": False},
    )
    assert claims["iss"] == claims["sub"] == "rfhir-sync"
    assert claims["iat"] == 1_800_000_000
    assert 0 < claims["exp"] - claims["iat"] <= 300
    assert claims["jti"]


@responses.activate
def test_every_assertion_has_a_fresh_jti(key_file: Path) -> None:
    auth = make_auth(key_file)
    ids = {
        jwt.decode(auth.client_assertion(TOKEN_URL), options={"verify_signature": False})["jti"]
        for _ in range(5)
    }
    assert len(ids) == 5


@responses.activate
def test_token_endpoint_is_discovered_from_smart_configuration(key_file: Path) -> None:
    responses.get(
        f"{BASE}/.well-known/smart-configuration",
        json={
            "token_endpoint": TOKEN_URL,
            "token_endpoint_auth_methods_supported": ["private_key_jwt"],
        },
    )
    responses.post(TOKEN_URL, json=token_reply())
    auth = make_auth(key_file, token_url=None, fhir_base=BASE)
    assert auth.token().reveal() == ACCESS
    assert auth.token_url() == TOKEN_URL
    claims = jwt.decode(
        form(responses.calls[1])["client_assertion"], options={"verify_signature": False}
    )
    assert claims["aud"] == TOKEN_URL


@responses.activate
def test_discovery_without_token_endpoint_is_a_config_error(key_file: Path) -> None:
    responses.get(f"{BASE}/.well-known/smart-configuration", status=404, body="nope")
    auth = make_auth(key_file, token_url=None, fhir_base=BASE)
    with pytest.raises(ConfigError, match="without a token_endpoint") as caught:
        auth.token()
    assert caught.value.exit_code == ExitCode.CONFIG


@responses.activate
def test_discovered_plain_http_endpoint_on_another_host_is_refused(key_file: Path) -> None:
    responses.get(
        f"{BASE}/.well-known/smart-configuration",
        json={"token_endpoint": "http://auth.example/token"},
    )
    auth = make_auth(key_file, token_url=None, fhir_base=BASE)
    with pytest.raises(ConfigError, match="not an https URL"):
        auth.token()


@pytest.mark.parametrize(
    ("token_url", "allowed"),
    [
        ("http://127.0.0.1:8080/token", True),
        ("http://localhost/token", True),
        ("http://[::1]/token", True),
        ("http://[0:0:0:0:0:0:0:1]/token", True),
        # A name that merely starts with "127." resolves wherever its owner likes: the old
        # test here (host.startswith("127.")) let plain http go to it.
        ("http://127.0.0.1.attacker.example/token", False),
        ("http://127.example.org/token", False),
        ("http://auth.example/token", False),
        ("https://auth.example/token", True),
    ],
)
def test_plain_http_token_urls_follow_the_clients_loopback_rule(
    key_file: Path, token_url: str, allowed: bool
) -> None:
    from urllib.parse import urlsplit

    from rejection_fhir.fhir.urls import check_server_url, is_loopback

    host = urlsplit(token_url).hostname or ""
    # The client's rule (settings' check_server_url) and SMART's default check agree.
    assert allowed == (token_url.startswith("https://") or is_loopback(host))
    if allowed:
        check_server_url(token_url)
        make_auth(key_file, token_url=token_url)
    else:
        with pytest.raises(ConfigError, match="refusing plain http"):
            check_server_url(token_url)
        with pytest.raises(ConfigError, match="not an https URL") as caught:
            make_auth(key_file, token_url=token_url)
        assert caught.value.exit_code == ExitCode.CONFIG


@responses.activate
def test_one_token_serves_many_requests_until_it_nearly_expires(key_file: Path) -> None:
    clock = Clock()
    token_call = responses.post(TOKEN_URL, json=token_reply("first", expires_in=300))
    seen: list[str] = []

    def patient(request: Any) -> tuple[int, dict[str, str], str]:
        seen.append(request.headers["Authorization"])
        return 200, {"Content-Type": "application/fhir+json"}, '{"resourceType": "Patient"}'

    responses.add_callback(responses.GET, f"{BASE}/Patient/1", callback=patient)
    auth = make_auth(key_file, clock=clock)
    client = FhirClient(BASE, auth=auth)
    for _ in range(3):
        client.read("Patient", "1")
    assert token_call.call_count == 1 and auth.tokens_fetched == 1
    assert seen == ["Bearer first"] * 3

    clock.now += 269  # the margin is 30 s for a 300 s token: still fresh
    client.read("Patient", "1")
    assert token_call.call_count == 1

    responses.replace(responses.POST, TOKEN_URL, json=token_reply("second", expires_in=300))
    clock.now += 2  # 271 s in: inside the margin, so a new token is fetched first
    client.read("Patient", "1")
    assert seen[-1] == "Bearer second"
    assert auth.tokens_fetched == 2


@responses.activate
def test_a_short_lived_token_refreshes_at_four_fifths_of_its_life(key_file: Path) -> None:
    clock = Clock()
    responses.post(TOKEN_URL, json=token_reply(expires_in=10))
    auth = make_auth(key_file, clock=clock)
    auth.token()
    clock.now += 7.9
    auth.token()
    assert auth.tokens_fetched == 1
    clock.now += 0.2
    auth.token()
    assert auth.tokens_fetched == 2


@responses.activate
def test_a_401_fetches_a_new_token_and_retries_once(key_file: Path) -> None:
    responses.post(TOKEN_URL, json=token_reply("stale"))
    responses.post(TOKEN_URL, json=token_reply("fresh"))
    responses.get(f"{BASE}/Patient/1", status=401, json={"resourceType": "OperationOutcome"})
    responses.get(f"{BASE}/Patient/1", json={"resourceType": "Patient", "id": "1"})
    client = FhirClient(BASE, auth=make_auth(key_file))
    assert client.read("Patient", "1")["id"] == "1"
    fhir_calls = [c for c in responses.calls if "/Patient/" in c.request.url]
    assert [c.request.headers["Authorization"] for c in fhir_calls] == [
        "Bearer stale",
        "Bearer fresh",
    ]


@responses.activate
def test_a_second_401_is_an_auth_error_without_a_loop(key_file: Path) -> None:
    token_call = responses.post(TOKEN_URL, json=token_reply())
    fhir = responses.get(f"{BASE}/Patient/1", status=401, body="")
    client = FhirClient(BASE, auth=make_auth(key_file))
    with pytest.raises(AuthError) as caught:
        client.read("Patient", "1")
    assert fhir.call_count == 2 and token_call.call_count == 2
    assert caught.value.exit_code == ExitCode.AUTH
    assert ACCESS not in str(caught.value)


@responses.activate
def test_a_refusal_names_the_oauth_error_and_never_the_assertion(key_file: Path) -> None:
    responses.post(
        TOKEN_URL,
        status=401,
        json={"error": "invalid_client", "error_description": "Invalid client credentials"},
    )
    auth = make_auth(key_file)
    with pytest.raises(AuthError) as caught:
        auth.token()
    text = str(caught.value)
    assert "invalid_client" in text and "Invalid client credentials" in text
    assert auth.key_id in text  # the hint names which key to look for
    assertion = form(responses.calls[0])["client_assertion"]
    assert assertion not in text and assertion.split(".")[2] not in text
    assert caught.value.exit_code == ExitCode.AUTH


@pytest.mark.parametrize(
    "reply",
    [
        {"token_type": "Bearer"},
        {"access_token": "", "token_type": "Bearer"},
        {"access_token": ACCESS, "token_type": "MAC"},
        ["not", "an", "object"],
    ],
)
@responses.activate
def test_odd_token_replies_are_auth_errors(key_file: Path, reply: Any) -> None:
    responses.post(TOKEN_URL, json=reply)
    with pytest.raises(AuthError) as caught:
        make_auth(key_file).token()
    assert ACCESS not in str(caught.value)


@responses.activate
def test_missing_or_odd_expires_in_falls_back_to_five_minutes(key_file: Path) -> None:
    clock = Clock()
    responses.post(TOKEN_URL, json=token_reply(expires_in="soon"))
    auth = make_auth(key_file, clock=clock)
    auth.token()
    clock.now += 269
    auth.token()
    assert auth.tokens_fetched == 1


def test_key_loading_errors_name_the_file_not_its_content(tmp_path: Path) -> None:
    bogus = tmp_path / "key.pem"
    bogus.write_text("-----BEGIN PRIVATE KEY-----\nSECRETSTUFF\n-----END PRIVATE KEY-----\n")
    with pytest.raises(ConfigError) as caught:
        load_private_key(bogus)
    assert str(bogus) in str(caught.value) and "SECRETSTUFF" not in str(caught.value)
    with pytest.raises(ConfigError, match="does not exist"):
        load_private_key(tmp_path / "missing.pem")


def test_repr_shows_neither_key_nor_token(key_file: Path) -> None:
    auth = make_auth(key_file)
    assert "PRIVATE" not in repr(auth) and "rfhir-sync" in repr(auth)


# --------------------------------------------------------------------------- settings


def test_settings_switch_smart_on_from_the_environment(key_file: Path, tmp_path: Path) -> None:
    env = {
        "RFHIR_SERVER": BASE,
        "RFHIR_SMART_CLIENT_ID": "rfhir-sync",
        "RFHIR_SMART_PRIVATE_KEY_FILE": str(key_file),
        "RFHIR_SMART_TOKEN_URL": TOKEN_URL,
        "RFHIR_SMART_SCOPE": "system/Observation.cr",
        "RFHIR_SMART_KEY_ID": "my-kid",
    }
    loaded = load_settings({}, env=env, cwd=tmp_path)
    assert loaded.smart_client_id == "rfhir-sync" and loaded.smart_key_id == "my-kid"
    client = make_client(loaded)
    auth = client._auth
    assert isinstance(auth, SmartBackendAuth)
    assert auth.scope == "system/Observation.cr" and auth.key_id == "my-kid"
    assert auth.token_url() == TOKEN_URL
    assert "smart" in repr(client)


def test_settings_read_smart_from_the_config_file(key_file: Path, tmp_path: Path) -> None:
    (tmp_path / "rejection-fhir.toml").write_text(
        f'server = "{BASE}"\nsmart_client_id = "rfhir-sync"\n'
        f'smart_private_key_file = "{key_file}"\nsmart_token_url = "{TOKEN_URL}"\n'
    )
    loaded = load_settings({}, env={}, cwd=tmp_path)
    assert loaded.smart_private_key_file == key_file
    assert isinstance(make_client(loaded)._auth, SmartBackendAuth)


def test_the_private_key_path_is_not_a_command_line_setting(key_file: Path) -> None:
    with pytest.raises(ValueError, match="unknown command-line keys"):
        load_settings({"smart_private_key_file": str(key_file)}, env={})


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ({"RFHIR_SMART_PRIVATE_KEY_FILE": None}, "only smart_client_id"),
        ({"RFHIR_SMART_CLIENT_ID": None}, "only smart_private_key_file"),
        ({"RFHIR_TOKEN": "static"}, "static credentials"),
        ({"RFHIR_SMART_PRIVATE_KEY_FILE": "/nonexistent/key.pem"}, "does not exist"),
        ({"RFHIR_SMART_TOKEN_URL": "http://auth.example/token"}, "refusing plain http"),
    ],
)
def test_contradictory_smart_settings_are_config_errors(
    key_file: Path, tmp_path: Path, extra: dict[str, str | None], message: str
) -> None:
    env = {
        "RFHIR_SERVER": BASE,
        "RFHIR_SMART_CLIENT_ID": "rfhir-sync",
        "RFHIR_SMART_PRIVATE_KEY_FILE": str(key_file),
    }
    env.update(extra)  # type: ignore[arg-type]
    env = {k: v for k, v in env.items() if v is not None}
    with pytest.raises(ConfigError, match=message):
        load_settings({}, env=env, cwd=tmp_path)


def test_keygen_writes_a_private_pem_and_a_public_jwks(tmp_path: Path, capsys: Any) -> None:
    import json

    from rejection_fhir.cli import main

    with pytest.raises(SystemExit) as caught:
        main(["smart-keygen", "--out", str(tmp_path / "keys"), "--alg", "ES384"])
        raise SystemExit(0)
    assert caught.value.code in (0, None)
    pem = tmp_path / "keys" / "smart-key.pem"
    assert pem.stat().st_mode & 0o777 == 0o600
    jwks = json.loads((tmp_path / "keys" / "jwks.json").read_text())
    key = load_private_key(pem)
    assert jwks["keys"] == [public_jwk(key)]
    assert "PRIVATE" not in (tmp_path / "keys" / "jwks.json").read_text()
    assert jwks["keys"][0]["kid"] in capsys.readouterr().out
    with pytest.raises(SystemExit) as again:
        main(["smart-keygen", "--out", str(tmp_path / "keys")])
    assert again.value.code == ExitCode.USAGE
