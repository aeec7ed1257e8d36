"""Transport and secret-handling policy, without sockets: TLS verification on by default and
the CA bundle passed to every request, plain http:// to a non-loopback host refused unless
--insecure, secrets never accepted as flags, and the sync state created with mode 0600."""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import click
import pytest
import requests
import responses

from rejection_fhir.cli import cli, main
from rejection_fhir.errors import ConfigError, ExitCode
from rejection_fhir.settings import load_settings, make_client
from rejection_fhir.sync.state import SyncState, exclusive

QR = {
    "resourceType": "QuestionnaireResponse",
    "status": "completed",
    "questionnaire": "https://elsewhere.example/Questionnaire/x",
}
SERVER_COMMANDS = ["publish", "summarize", "sync", "seed", "report"]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[dict[str, Any]]]:
    """Every request that reaches the transport, with its TLS settings; answered 200."""
    seen: list[dict[str, Any]] = []
    for name in ("REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE"):  # requests would read them
        monkeypatch.delenv(name, raising=False)

    def send(self: Any, request: requests.PreparedRequest, **kwargs: Any) -> requests.Response:
        seen.append({"url": request.url, "verify": kwargs.get("verify")})
        response = requests.Response()
        response.status_code = 200
        response.headers["Content-Type"] = "application/fhir+json"
        response._content = json.dumps(
            {"resourceType": "Bundle", "type": "searchset", "entry": []}
        ).encode()
        response.request = request
        response.url = request.url or ""
        return response

    monkeypatch.setattr(requests.adapters.HTTPAdapter, "send", send)
    yield seen


def run(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str]:
    with pytest.raises(SystemExit) as caught:
        main(list(args))
        raise SystemExit(0)
    return int(caught.value.code or 0), capsys.readouterr().err


def test_tls_verification_is_on_by_default(sent: list[dict[str, Any]], tmp_path: Path) -> None:
    settings = load_settings({"server": "https://fhir.example.org/fhir"}, env={}, cwd=tmp_path)
    with make_client(settings) as client:
        list(client.search("Questionnaire"))
    assert sent and all(request["verify"] is True for request in sent)


def test_the_ca_bundle_reaches_every_request(sent: list[dict[str, Any]], tmp_path: Path) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    env = {"RFHIR_SERVER": "https://fhir.example.org/fhir", "RFHIR_CA_BUNDLE": str(bundle)}
    with make_client(load_settings({}, env=env, cwd=tmp_path)) as client:
        list(client.search("Questionnaire"))
        client.read("Questionnaire", "x")
    assert [r["verify"] for r in sent] == [str(bundle), str(bundle)]


def test_ca_bundle_flag_reaches_the_request(
    sent: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    response = tmp_path / "qr.json"
    response.write_text(json.dumps(QR))
    code, err = run(
        capsys,
        "summarize",
        "--fetch-questionnaires",
        "--server",
        "https://fhir.example.org/fhir",
        "--ca-bundle",
        str(bundle),
        str(response),
    )
    assert code == 0, err
    assert [r["verify"] for r in sent] == [str(bundle)]


def test_a_missing_ca_bundle_is_a_config_error(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist"):
        load_settings(
            {"server": "https://fhir.example.org/fhir", "ca_bundle": str(tmp_path / "no.pem")},
            env={},
        )


@pytest.mark.parametrize(
    "url",
    ["http://fhir.example.org/fhir", "http://10.1.2.3/fhir", "http://[2001:db8::1]/fhir"],
)
def test_plain_http_to_another_host_is_refused_before_any_request(
    sent: list[dict[str, Any]], tmp_path: Path, capsys: pytest.CaptureFixture[str], url: str
) -> None:
    response = tmp_path / "qr.json"
    response.write_text(json.dumps(QR))
    code, err = run(capsys, "summarize", "--fetch-questionnaires", "--server", url, str(response))
    assert code == ExitCode.CONFIG
    assert "refusing plain http://" in err and "--insecure" in err
    assert sent == []
    for command in ("report", "publish"):
        args = ["--patient", "p1"] if command == "report" else []
        code, err = run(capsys, command, "--server", url, *args)
        assert code == ExitCode.CONFIG, (command, err)
    assert sent == []


@responses.activate
def test_insecure_allows_plain_http_on_purpose(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    url = "http://fhir.example.org/fhir"
    responses.get(f"{url}/Questionnaire", json={"resourceType": "Bundle", "type": "searchset"})
    response = tmp_path / "qr.json"
    response.write_text(json.dumps(QR))
    code, err = run(
        capsys, "summarize", "--fetch-questionnaires", "--insecure", "--server", url, str(response)
    )
    assert code == 0, err
    assert len(responses.calls) == 1


@pytest.mark.parametrize(
    "url", ["http://127.0.0.1:8080/fhir", "http://localhost:8080/fhir", "http://[::1]:8080/fhir"]
)
def test_plain_http_to_loopback_is_allowed(tmp_path: Path, url: str) -> None:
    assert load_settings({"server": url}, env={}, cwd=tmp_path).server == url


def test_environment_cannot_sneak_plain_http_past_the_policy(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="refusing plain http"):
        load_settings({}, env={"RFHIR_SERVER": "http://fhir.example.org/fhir"}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="refusing plain http"):
        load_settings({}, env={"RFHIR_TARGET": "http://ehr.example.org/fhir"}, cwd=tmp_path)


@pytest.mark.parametrize("command", SERVER_COMMANDS)
@pytest.mark.parametrize(
    "flag", ["--token", "--password", "--basic-password", "--secret", "--target-token"]
)
def test_secrets_are_not_accepted_as_flags(
    capsys: pytest.CaptureFixture[str], command: str, flag: str
) -> None:
    code, err = run(capsys, command, flag, "s3cret-value-91")
    assert code == ExitCode.USAGE
    assert "s3cret-value-91" not in err


@pytest.mark.parametrize("command", SERVER_COMMANDS)
def test_no_command_offers_a_secret_flag(command: str) -> None:
    resolved = cli.get_command(click.Context(cli), command)  # commands load lazily
    assert resolved is not None
    options = {opt for param in resolved.params for opt in param.opts}
    secret_like = {
        opt
        for opt in options
        if any(word in opt for word in ("token", "password", "secret", "key"))
        and not opt.endswith("-file")
    }
    assert secret_like == set(), secret_like


def test_secret_keys_are_refused_by_load_settings() -> None:
    for key in ("token", "password", "basic_password", "target_token", "secret"):
        with pytest.raises(ConfigError, match="not accepted on the command line"):
            load_settings({key: "s3cret"}, env={})


def test_inline_secret_in_the_config_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "rejection-fhir.toml").write_text('token = "s3cret-inline"\n')
    with pytest.raises(ConfigError) as caught:
        load_settings({}, env={}, cwd=tmp_path)
    assert "s3cret-inline" not in str(caught.value)


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_state_file_is_created_0600_whatever_the_umask(tmp_path: Path) -> None:
    old = os.umask(0)
    try:
        path = tmp_path / "deep" / "state.sqlite3"
        with exclusive(path), SyncState(path) as state:
            state.set_cursor("https://fhir.example.org/fhir", "2026-11-01T00:00:00Z")
            # The WAL sidecars exist while the database is open; look at them now.
            modes = {
                p.name: _mode(p) for p in path.parent.iterdir() if p.name.startswith(path.name)
            }
    finally:
        os.umask(old)
    assert set(modes) >= {"state.sqlite3", "state.sqlite3.lock", "state.sqlite3-wal"}
    assert modes == dict.fromkeys(modes, 0o600), {k: oct(v) for k, v in modes.items()}


def test_an_existing_state_file_that_is_too_open_is_tightened(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite3"
    with SyncState(path):
        pass
    path.chmod(0o644)
    with SyncState(path):
        pass
    assert _mode(path) == 0o600
