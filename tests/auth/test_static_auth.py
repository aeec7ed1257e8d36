"""Static bearer tokens and basic authentication against a real local server, from the
environment and from files, and what a wrong credential gives: exit 9 and no secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from rejection_fhir.cli import main
from rejection_fhir.errors import AuthError, ExitCode
from rejection_fhir.settings import load_settings, make_client
from tests.auth.servers import LocalFhir, basic_checker, bearer_checker

pytestmark = pytest.mark.integration

TOKEN = "static-Tok3n-a91f"
USER, PASSWORD = "clinic-sync", "pa55-Wörd-77e1"


def test_static_bearer_token_from_the_environment(tmp_path: Path) -> None:
    with LocalFhir(check=bearer_checker(TOKEN)) as server:
        env = {"RFHIR_SERVER": server.base_url, "RFHIR_TOKEN": TOKEN}
        with make_client(load_settings({}, env=env, cwd=tmp_path)) as client:
            assert client.read("Patient", "a")["id"] == "a"
        assert server.credentials() == ["static"]


def test_static_bearer_token_from_a_file(tmp_path: Path) -> None:
    token_file = tmp_path / "token"
    token_file.write_text(TOKEN + "\n")
    token_file.chmod(0o600)
    with LocalFhir(check=bearer_checker(TOKEN)) as server:
        settings = load_settings(
            {"server": server.base_url, "token_file": str(token_file)}, env={}, cwd=tmp_path
        )
        with make_client(settings) as client:
            assert client.read("Patient", "a")["id"] == "a"


def test_basic_auth_with_the_password_in_a_file(tmp_path: Path) -> None:
    password_file = tmp_path / "password"
    password_file.write_text(PASSWORD)
    password_file.chmod(0o600)
    with LocalFhir(check=basic_checker(USER, PASSWORD)) as server:
        env = {
            "RFHIR_SERVER": server.base_url,
            "RFHIR_BASIC_USER": USER,
            "RFHIR_BASIC_PASSWORD_FILE": str(password_file),
        }
        with make_client(load_settings({}, env=env, cwd=tmp_path)) as client:
            assert client.read("Patient", "a")["id"] == "a"
        assert server.credentials() == [USER]


@pytest.mark.parametrize(
    "env",
    [
        {"RFHIR_TOKEN": "wrong-" + TOKEN},
        {"RFHIR_BASIC_USER": USER, "RFHIR_BASIC_PASSWORD": "wrong-" + PASSWORD},
    ],
)
def test_a_wrong_credential_is_an_auth_error_naming_no_secret(
    env: dict[str, str],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    check = bearer_checker(TOKEN) if "RFHIR_TOKEN" in env else basic_checker(USER, PASSWORD)
    with LocalFhir(check=check) as server:
        full = {"RFHIR_SERVER": server.base_url, **env}
        with (
            pytest.raises(AuthError) as caught,
            make_client(load_settings({}, env=full, cwd=tmp_path)) as client,
        ):
            client.read("Patient", "a")
        assert caught.value.status == 401 and "invalid_token" in str(caught.value)

        for name, value in full.items():
            monkeypatch.setenv(name, value)
        response = tmp_path / "qr.json"
        response.write_text(
            '{"resourceType": "QuestionnaireResponse", "status": "completed",'
            ' "questionnaire": "https://elsewhere.example/Questionnaire/x"}'
        )
        with pytest.raises(SystemExit) as exited:
            main(["-vv", "summarize", "--fetch-questionnaires", str(response)])
    out, err = capsys.readouterr()
    assert exited.value.code == ExitCode.AUTH
    assert err.count("error: ") == 1 and "Traceback" not in err
    for secret in (TOKEN, PASSWORD, "wrong-" + TOKEN, "wrong-" + PASSWORD):
        assert secret not in out + err
