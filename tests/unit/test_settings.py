"""Settings precedence, secret handling, URL policy and the make_client seam."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import pytest
import responses
from responses import matchers

from rejection_fhir import settings as settings_module
from rejection_fhir.errors import ConfigError, ExitCode
from rejection_fhir.fhir.auth import Secret
from rejection_fhir.settings import (
    DEFAULT_STATE_PATH,
    Settings,
    check_server_url,
    load_settings,
    make_client,
)

TOKEN = "tok-SECRET-77ab"


def write(path: Path, text: str, mode: int = 0o600) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    path.chmod(mode)
    return path


def test_defaults_without_any_source(tmp_path: Path) -> None:
    loaded = load_settings({}, env={}, cwd=tmp_path)
    assert loaded.server is None
    assert loaded.token is None
    assert loaded.timeout == Settings().timeout
    assert loaded.insecure is False
    assert loaded.config_path is None
    assert loaded.sources == {}


def test_precedence_flags_over_env_over_config_over_defaults(tmp_path: Path) -> None:
    write(
        tmp_path / "rejection-fhir.toml",
        'server = "https://config.example/fhir"\n'
        'target = "https://ehr-config.example/fhir"\n'
        "timeout = 11\nretries = 1\n",
    )
    env = {"RFHIR_SERVER": "https://env.example/fhir", "RFHIR_TIMEOUT": "22"}
    loaded = load_settings(
        {"server": "https://flag.example/fhir/", "timeout": None}, env=env, cwd=tmp_path
    )
    assert loaded.server == "https://flag.example/fhir"  # flag; trailing slash dropped
    assert loaded.timeout == 22.0  # env (the flag was not given: None)
    assert loaded.target == "https://ehr-config.example/fhir"  # config
    assert loaded.retries == 1  # config
    assert loaded.connect_timeout == Settings().connect_timeout  # default
    assert loaded.config_path == tmp_path / "rejection-fhir.toml"
    assert loaded.sources["server"] == "--server"
    assert loaded.sources["timeout"] == "RFHIR_TIMEOUT"
    assert "rejection-fhir.toml" in loaded.sources["target"]
    assert "connect_timeout" not in loaded.sources


def test_config_file_from_env_then_from_the_flag(tmp_path: Path) -> None:
    from_env = write(tmp_path / "a.toml", 'server = "https://a.example/fhir"\n')
    from_flag = write(tmp_path / "b.toml", 'server = "https://b.example/fhir"\n')
    write(tmp_path / "rejection-fhir.toml", 'server = "https://cwd.example/fhir"\n')
    env = {"RFHIR_CONFIG": str(from_env)}
    assert load_settings({}, env=env, cwd=tmp_path).server == "https://a.example/fhir"
    assert (
        load_settings({"config": str(from_flag)}, env=env, cwd=tmp_path).server
        == "https://b.example/fhir"
    )
    assert (
        load_settings({}, env=env, config_path=from_flag, cwd=tmp_path).server
        == "https://b.example/fhir"
    )
    assert load_settings({}, env={}, cwd=tmp_path).server == "https://cwd.example/fhir"


def test_a_named_config_file_must_exist(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="does not exist") as caught:
        load_settings({}, env={"RFHIR_CONFIG": str(tmp_path / "missing.toml")}, cwd=tmp_path)
    assert caught.value.exit_code == ExitCode.CONFIG
    assert "RFHIR_CONFIG" in str(caught.value)


def test_broken_toml_and_unknown_keys(tmp_path: Path) -> None:
    write(tmp_path / "rejection-fhir.toml", "server = \n")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_settings({}, env={}, cwd=tmp_path)
    write(tmp_path / "rejection-fhir.toml", 'servr = "https://x/fhir"\n[sync]\nbatch_size = 50\n')
    with pytest.raises(ConfigError, match="unknown setting 'servr'"):
        load_settings({}, env={}, cwd=tmp_path)


def test_other_tables_are_kept_for_their_owners(tmp_path: Path) -> None:
    write(
        tmp_path / "rejection-fhir.toml", '[sync]\nbatch_size = 50\n[publish]\nstatus = "active"\n'
    )
    loaded = load_settings({}, env={}, cwd=tmp_path)
    assert loaded.sections == {"sync": {"batch_size": 50}, "publish": {"status": "active"}}


@pytest.mark.parametrize(
    "text",
    [
        f'token = "{TOKEN}"\n',
        f'basic_user = "svc"\npassword = "{TOKEN}"\n',
        f'[sync]\nclient_secret = "{TOKEN}"\n',
        f'[target]\napi_key = "{TOKEN}"\n',
    ],
    ids=["token", "password", "nested-secret", "api-key"],
)
def test_inline_secrets_in_the_config_file_are_refused(tmp_path: Path, text: str) -> None:
    write(tmp_path / "rejection-fhir.toml", 'server = "https://x.example/fhir"\n' + text)
    with pytest.raises(ConfigError) as caught:
        load_settings({}, env={}, cwd=tmp_path)
    assert "holds a secret inline" in str(caught.value)
    assert "_file" in (caught.value.hint or "")
    assert TOKEN not in str(caught.value)


def test_token_endpoint_urls_are_not_mistaken_for_secrets(tmp_path: Path) -> None:
    write(tmp_path / "rejection-fhir.toml", '[auth]\ntoken_endpoint = "https://x/token"\n')
    assert load_settings({}, env={}, cwd=tmp_path).sections["auth"]["token_endpoint"]


def test_secret_files_named_in_the_config_are_read_relative_to_it(tmp_path: Path) -> None:
    config_dir = tmp_path / "conf"
    write(config_dir / "secrets" / "token", TOKEN + "\n")
    write(config_dir / "rejection-fhir.toml", 'token_file = "secrets/token"\n')
    loaded = load_settings(
        {"config": str(config_dir / "rejection-fhir.toml")}, env={}, cwd=tmp_path
    )
    assert loaded.token == Secret(TOKEN)
    assert loaded.token is not None and loaded.token.reveal() == TOKEN
    assert loaded.sources["token"] == "'token_file' in the config file"


def test_secrets_from_env_values_and_env_files(tmp_path: Path) -> None:
    password_file = write(tmp_path / "pw", "correct horse\n")
    loaded = load_settings(
        {},
        env={"RFHIR_BASIC_USER": "svc", "RFHIR_BASIC_PASSWORD_FILE": str(password_file)},
        cwd=tmp_path,
    )
    assert loaded.basic_user == "svc"
    assert loaded.basic_password is not None and loaded.basic_password.reveal() == "correct horse"
    loaded = load_settings({}, env={"RFHIR_TOKEN": TOKEN}, cwd=tmp_path)
    assert loaded.token is not None and loaded.token.reveal() == TOKEN


def test_token_file_flag_beats_env_token(tmp_path: Path) -> None:
    token_file = write(tmp_path / "t", "from-file")
    loaded = load_settings(
        {"token_file": str(token_file)}, env={"RFHIR_TOKEN": TOKEN}, cwd=tmp_path
    )
    assert loaded.token is not None and loaded.token.reveal() == "from-file"
    assert loaded.sources["token"] == "--token-file"


def test_env_token_beats_config_token_file(tmp_path: Path) -> None:
    write(tmp_path / "t", "from-config-file")
    write(tmp_path / "rejection-fhir.toml", 'token_file = "t"\n')
    loaded = load_settings({}, env={"RFHIR_TOKEN": TOKEN}, cwd=tmp_path)
    assert loaded.token is not None and loaded.token.reveal() == TOKEN


@pytest.mark.parametrize(
    ("content", "message"),
    [("", "is empty"), ("  \n", "is empty"), ("a\nb\n", "more than one line")],
)
def test_unusable_secret_files(tmp_path: Path, content: str, message: str) -> None:
    token_file = write(tmp_path / "t", content)
    with pytest.raises(ConfigError, match=message):
        load_settings({}, env={"RFHIR_TOKEN_FILE": str(token_file)}, cwd=tmp_path)


def test_missing_secret_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="RFHIR_TOKEN_FILE"):
        load_settings({}, env={"RFHIR_TOKEN_FILE": str(tmp_path / "nope")}, cwd=tmp_path)


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
def test_world_readable_secret_file_is_warned_about(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    token_file = write(tmp_path / "t", TOKEN, mode=0o644)
    load_settings({}, env={"RFHIR_TOKEN_FILE": str(token_file)}, cwd=tmp_path)
    assert "readable by other users" in caplog.text
    assert TOKEN not in caplog.text


def test_both_env_token_and_token_file_is_contradictory(tmp_path: Path) -> None:
    token_file = write(tmp_path / "t", "x")
    with pytest.raises(ConfigError, match="both RFHIR_TOKEN and RFHIR_TOKEN_FILE"):
        load_settings(
            {}, env={"RFHIR_TOKEN": TOKEN, "RFHIR_TOKEN_FILE": str(token_file)}, cwd=tmp_path
        )


@pytest.mark.parametrize("key", ["token", "password", "basic_password"])
def test_secrets_are_refused_on_the_command_line(tmp_path: Path, key: str) -> None:
    with pytest.raises(ConfigError, match="not accepted on the command line") as caught:
        load_settings({key: TOKEN}, env={}, cwd=tmp_path)
    assert TOKEN not in str(caught.value)


def test_token_and_basic_together_are_contradictory(tmp_path: Path) -> None:
    pw = write(tmp_path / "pw", "pw")
    env = {"RFHIR_TOKEN": TOKEN, "RFHIR_BASIC_USER": "svc", "RFHIR_BASIC_PASSWORD_FILE": str(pw)}
    with pytest.raises(ConfigError, match="both a bearer token"):
        load_settings({}, env=env, cwd=tmp_path)


def test_basic_user_without_password(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="only the user is set") as caught:
        load_settings({}, env={"RFHIR_BASIC_USER": "svc"}, cwd=tmp_path)
    assert "RFHIR_BASIC_PASSWORD_FILE" in (caught.value.hint or "")


@pytest.mark.parametrize(
    "url",
    [
        "http://localhost:8080/fhir",
        "http://127.0.0.1:8080/fhir",
        "http://127.8.9.10/fhir",
        "http://[::1]:8080/fhir",
        "https://fhir.example.org/fhir",
    ],
)
def test_plain_http_is_allowed_to_loopback_only(tmp_path: Path, url: str) -> None:
    assert load_settings({"server": url}, env={}, cwd=tmp_path).server == url


@pytest.mark.parametrize(
    "url",
    ["http://fhir.example.org/fhir", "http://10.0.0.5/fhir", "http://localhost.example.org/fhir"],
)
def test_plain_http_to_another_host_is_refused_unless_insecure(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match="refusing plain http://"):
        load_settings({"server": url}, env={}, cwd=tmp_path)
    with pytest.raises(ConfigError, match="refusing plain http://"):
        load_settings({}, env={"RFHIR_TARGET": url}, cwd=tmp_path)
    assert load_settings({"server": url, "insecure": True}, env={}, cwd=tmp_path).server == url
    assert load_settings({"server": url}, env={"RFHIR_INSECURE": "1"}, cwd=tmp_path).insecure


@pytest.mark.parametrize(
    "url",
    ["ftp://x/fhir", "x.example/fhir", "https://user:pw@x.example/fhir", "https://x/fhir?a=1"],
)
def test_malformed_server_urls(url: str) -> None:
    with pytest.raises(ConfigError):
        check_server_url(url)


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"RFHIR_TIMEOUT": "soon"}, "RFHIR_TIMEOUT must be a number"),
        ({"RFHIR_TIMEOUT": "0"}, "more than 0"),
        ({"RFHIR_RETRIES": "-1"}, "cannot be negative"),
        ({"RFHIR_INSECURE": "maybe"}, "true or false"),
        ({"RFHIR_CA_BUNDLE": "/nonexistent/ca.pem"}, "CA bundle"),
    ],
)
def test_bad_values_name_their_source(tmp_path: Path, env: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        load_settings({}, env=env, cwd=tmp_path)


def test_paths_are_resolved(tmp_path: Path) -> None:
    ca = write(tmp_path / "conf" / "ca.pem", "-----BEGIN CERTIFICATE-----\n")
    write(
        tmp_path / "conf" / "rejection-fhir.toml",
        'ca_bundle = "ca.pem"\nstate = "state/sync.json"\n',
    )
    loaded = load_settings(
        {}, env={"RFHIR_CONFIG": str(tmp_path / "conf" / "rejection-fhir.toml")}, cwd=tmp_path
    )
    assert loaded.ca_bundle == ca
    assert loaded.state_path == tmp_path / "conf" / "state" / "sync.json"
    assert (
        load_settings({"state_path": "s.json"}, env={}, cwd=tmp_path).state_path
        == tmp_path / "s.json"
    )


def test_a_postgresql_state_is_a_url_kept_as_given(tmp_path: Path) -> None:
    url = "postgresql://sync@db.example.org:5432/rfhir?sslmode=verify-full"
    assert load_settings({}, env={"RFHIR_STATE": url}, cwd=tmp_path).state_path == url
    assert load_settings({}, env={}, cwd=tmp_path).state_path == DEFAULT_STATE_PATH


@pytest.mark.parametrize(
    "url", ["postgresql://sync:hunter2@db/rfhir", "postgres://db/rfhir?password=hunter2"]
)
def test_a_password_in_the_state_url_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(ConfigError, match="PGPASSFILE") as caught:
        load_settings({"state_path": url}, env={}, cwd=tmp_path)
    assert "hunter2" not in str(caught.value)


def test_repr_never_shows_secrets(tmp_path: Path) -> None:
    target_pw = write(tmp_path / "tpw", "target-password-xyz")
    loaded = load_settings(
        {},
        env={
            "RFHIR_TOKEN": TOKEN,
            "RFHIR_TARGET_BASIC_USER": "ehr",
            "RFHIR_TARGET_BASIC_PASSWORD_FILE": str(target_pw),
        },
        cwd=tmp_path,
    )
    for text in (repr(loaded), str(loaded), f"{loaded.token}", str(vars(loaded))):
        assert TOKEN not in text
        assert "target-password-xyz" not in text
    assert "Secret('********')" in repr(loaded)


# ------------------------------------------------------------------------------ make_client


def test_make_client_applies_settings(tmp_path: Path) -> None:
    ca = write(tmp_path / "ca.pem", "pem")
    loaded = Settings(
        server="https://fhir.example.org/fhir",
        token=Secret(TOKEN),
        timeout=7.0,
        connect_timeout=3.0,
        retries=2,
        retry_budget=30.0,
        ca_bundle=ca,
    )
    client = make_client(loaded)
    assert client.base_url == "https://fhir.example.org/fhir"
    assert (client.timeouts.connect, client.timeouts.read) == (3.0, 7.0)
    assert (client.retry.retries, client.retry.budget) == (2, 30.0)
    with responses.RequestsMock() as rsps:
        rsps.get(
            "https://fhir.example.org/fhir/Questionnaire/a",
            json={"resourceType": "Questionnaire"},
            match=[matchers.header_matcher({"Authorization": f"Bearer {TOKEN}"})],
        )
        client.read("Questionnaire", "a")
        assert rsps.calls[0].request.req_kwargs["verify"] == str(ca)
        assert rsps.calls[0].request.req_kwargs["timeout"] == (3.0, 7.0)


def test_make_client_verifies_tls_by_default(monkeypatch: pytest.MonkeyPatch) -> None:
    # requests would substitute these CA paths for True; both still mean "verify".
    monkeypatch.delenv("REQUESTS_CA_BUNDLE", raising=False)
    monkeypatch.delenv("CURL_CA_BUNDLE", raising=False)
    client = make_client(Settings(server="https://fhir.example.org/fhir"))
    with responses.RequestsMock() as rsps:
        rsps.get(
            "https://fhir.example.org/fhir/metadata", json={"resourceType": "CapabilityStatement"}
        )
        client.capabilities()
        assert rsps.calls[0].request.req_kwargs["verify"] is True


def test_make_client_uses_the_targets_own_credentials_for_the_target() -> None:
    loaded = Settings(
        server="https://forms.example/fhir",
        target="https://ehr.example/fhir",
        token=Secret("forms-token"),
        target_token=Secret("ehr-token"),
    )
    with responses.RequestsMock() as rsps:
        rsps.get(
            "https://forms.example/fhir/metadata", json={"resourceType": "CapabilityStatement"}
        )
        rsps.get("https://ehr.example/fhir/metadata", json={"resourceType": "CapabilityStatement"})
        make_client(loaded).capabilities()
        make_client(loaded, server=loaded.target).capabilities()
        assert rsps.calls[0].request.headers["Authorization"] == "Bearer forms-token"
        assert rsps.calls[1].request.headers["Authorization"] == "Bearer ehr-token"


def test_make_client_without_a_server() -> None:
    with pytest.raises(ConfigError, match="no FHIR server configured") as caught:
        make_client(Settings())
    assert "RFHIR_SERVER" in (caught.value.hint or "")


def test_make_client_applies_the_http_policy_to_an_explicit_server() -> None:
    with pytest.raises(ConfigError, match="refusing plain http://"):
        make_client(Settings(), server="http://ehr.example/fhir")
    assert make_client(Settings(insecure=True), server="http://ehr.example/fhir")


def test_make_client_warns_when_credentials_go_over_plain_http(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.WARNING)
    make_client(Settings(server="http://lab.example/fhir", insecure=True, token=Secret(TOKEN)))
    assert "plain http" in caplog.text
    assert TOKEN not in caplog.text


def test_the_seam_can_be_swapped(monkeypatch: pytest.MonkeyPatch) -> None:
    made = []

    def fake(settings: Settings, *, server: str | None = None) -> str:
        made.append(server)
        return "fake client"

    monkeypatch.setattr("rejection_fhir.settings.make_client", fake)
    # callers look the function up on the module, so they get the fake
    assert settings_module.make_client(Settings(), server="https://x/fhir") == "fake client"
    assert made == ["https://x/fhir"]


def test_write_mode_flag_over_env_over_config_over_default(tmp_path: Path) -> None:
    empty = tmp_path / "empty"
    empty.mkdir()
    assert load_settings({}, env={}, cwd=empty).write_mode == "auto"
    (tmp_path / "rejection-fhir.toml").write_text('write_mode = "batch"\n')
    assert load_settings({}, env={}, cwd=tmp_path).write_mode == "batch"
    env = {"RFHIR_WRITE_MODE": "put"}
    assert load_settings({}, env=env, cwd=tmp_path).write_mode == "put"
    assert load_settings({"write_mode": "ledger-only"}, env=env, cwd=tmp_path).write_mode == (
        "ledger-only"
    )


def test_an_unknown_write_mode_in_the_config_is_refused_naming_where(tmp_path: Path) -> None:
    (tmp_path / "rejection-fhir.toml").write_text('write_mode = "sometimes"\n')
    with pytest.raises(ConfigError, match=r"write mode 'sometimes'.*rejection-fhir\.toml"):
        load_settings({}, env={}, cwd=tmp_path)
