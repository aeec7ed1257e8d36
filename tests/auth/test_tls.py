"""TLS against a real local HTTPS server whose certificate a private CA (made here) signed:
refused without the CA bundle, accepted with it (settings, environment and --ca-bundle)."""

from __future__ import annotations

from pathlib import Path

import pytest

from rejection_fhir.cli import main
from rejection_fhir.errors import ExitCode, ServerUnavailableError
from rejection_fhir.settings import load_settings, make_client
from tests.auth.servers import LocalFhir, PrivateCA, bearer_checker, make_private_ca

pytestmark = pytest.mark.integration

TOKEN = "tls-Tok3n-5e0c"


@pytest.fixture(scope="module")
def ca(tmp_path_factory: pytest.TempPathFactory) -> PrivateCA:
    return make_private_ca(tmp_path_factory.mktemp("ca"))


@pytest.fixture
def https_server(ca: PrivateCA, monkeypatch: pytest.MonkeyPatch):
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "RFHIR_CA_BUNDLE"):
        monkeypatch.delenv(name, raising=False)
    with LocalFhir(check=bearer_checker(TOKEN), tls=ca.server_context()) as server:
        yield server


def test_a_private_ca_is_refused_without_the_bundle(
    https_server: LocalFhir, tmp_path: Path
) -> None:
    env = {"RFHIR_SERVER": https_server.base_url, "RFHIR_TOKEN": TOKEN}
    with (
        pytest.raises(ServerUnavailableError) as caught,
        make_client(load_settings({}, env=env, cwd=tmp_path)) as client,
    ):
        client.read("Patient", "a")
    assert "TLS handshake" in str(caught.value) and "ca_bundle" in str(caught.value)
    assert https_server.seen == []  # nothing was sent over the untrusted connection
    assert TOKEN not in str(caught.value)


def test_the_ca_bundle_from_the_environment_is_trusted(
    https_server: LocalFhir, ca: PrivateCA, tmp_path: Path
) -> None:
    env = {
        "RFHIR_SERVER": https_server.base_url,
        "RFHIR_TOKEN": TOKEN,
        "RFHIR_CA_BUNDLE": str(ca.ca_pem),
    }
    with make_client(load_settings({}, env=env, cwd=tmp_path)) as client:
        assert client.read("Patient", "a")["id"] == "a"
    assert https_server.credentials() == ["static"]


def test_ca_bundle_flag_on_the_command_line(
    https_server: LocalFhir,
    ca: PrivateCA,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("RFHIR_TOKEN", TOKEN)
    response = tmp_path / "qr.json"
    response.write_text(
        '{"resourceType": "QuestionnaireResponse", "status": "completed",'
        ' "questionnaire": "https://elsewhere.example/Questionnaire/x"}'
    )
    args = ["summarize", "--fetch-questionnaires", "--server", https_server.base_url]

    with pytest.raises(SystemExit) as refused:
        main([*args, str(response)])
    assert refused.value.code == ExitCode.SERVER_UNAVAILABLE
    assert "TLS handshake" in capsys.readouterr().err

    with pytest.raises(SystemExit) as accepted:
        main([*args, "--ca-bundle", str(ca.ca_pem), str(response)])
        raise SystemExit(0)
    err = capsys.readouterr().err
    assert accepted.value.code in (0, None), err
    assert "summarised 1 response(s)" in err
    assert [s.path for s in https_server.seen] == ["/fhir/Questionnaire"]
