"""The transport's Session: the environment read once per origin, with requests' meaning."""

from __future__ import annotations

import pytest
import requests
import responses

from rejection_fhir.fhir import transport
from rejection_fhir.fhir.transport import Session

URL = "https://ehr.example/fhir/Patient/1"


def _settings(session: requests.Session, url: str = URL, **kw):
    return session.merge_environment_settings(
        url, kw.get("proxies", {}), kw.get("stream"), kw.get("verify"), kw.get("cert")
    )


def test_the_environment_gives_the_same_settings_as_requests(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    monkeypatch.setenv("REQUESTS_CA_BUNDLE", "/etc/clinic-ca.pem")
    ours, theirs = Session(), requests.Session()
    for url in (URL, "https://internal.example/fhir/Patient/1", "http://ehr.example/x"):
        for kw in ({}, {"verify": False}, {"proxies": {"https": "http://other:1"}}):
            assert _settings(ours, url, **kw) == _settings(theirs, url, **kw), (url, kw)


def test_the_proxy_variables_are_read_once_per_origin(monkeypatch):
    calls: list[str] = []
    real = transport.get_environ_proxies

    def counted(url, no_proxy=None):
        calls.append(url)
        return real(url, no_proxy=no_proxy)

    monkeypatch.setattr(transport, "get_environ_proxies", counted)
    session = Session()
    for n in range(5):
        _settings(session, f"https://ehr.example/fhir/Patient/{n}")
    _settings(session, "https://files.example/export/1")
    assert len(calls) == 2, "once per origin"


def test_no_environment_when_the_session_is_told_not_to_trust_it(monkeypatch):
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.example:3128")
    session = Session()
    session.trust_env = False
    assert _settings(session)["proxies"] == {}


@pytest.fixture
def netrc(tmp_path, monkeypatch):
    """A ~/.netrc with credentials for ehr.example."""
    path = tmp_path / ".netrc"
    path.write_text("machine ehr.example login clinic password s3cret\n", encoding="utf-8")
    path.chmod(0o600)
    monkeypatch.setenv("NETRC", str(path))
    return path


@responses.activate
def test_netrc_credentials_are_sent_and_looked_up_once_per_origin(netrc, monkeypatch):
    looked: list[str] = []
    real = transport.get_netrc_auth
    monkeypatch.setattr(transport, "get_netrc_auth", lambda url: looked.append(url) or real(url))
    responses.get(URL, json={})
    responses.get("https://other.example/x", json={})
    session = Session()
    for _ in range(3):
        session.get(URL)
    session.get("https://other.example/x")
    assert responses.calls[0].request.headers["Authorization"].startswith("Basic ")
    assert "Authorization" not in responses.calls[3].request.headers, "no entry, no header"
    assert len(looked) == 2, "once per origin"


@responses.activate
def test_credentials_given_win_over_netrc(netrc):
    responses.get(URL, json={})
    session = Session()
    session.get(URL, headers={}, auth=("other", "pw"))
    assert responses.calls[0].request.headers["Authorization"] == requests.auth._basic_auth_str(
        "other", "pw"
    )
