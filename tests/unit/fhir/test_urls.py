"""URL rules in one place: bases, the plain-http policy, loopback, origins."""

from __future__ import annotations

import pytest

from rejection_fhir.errors import ConfigError, ExitCode
from rejection_fhir.fhir.client import FhirClient
from rejection_fhir.fhir.urls import (
    check_base_url,
    check_server_url,
    is_loopback,
    plain_http_off_loopback,
    same_origin,
)


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("localhost", True),
        ("LOCALHOST", True),
        ("127.0.0.1", True),
        ("127.255.0.9", True),
        ("::1", True),
        ("[::1]", True),
        ("0:0:0:0:0:0:0:1", True),
        ("127.example.org", False),
        ("127.0.0.1.nip.io", False),
        ("localhost.example.org", False),
        ("10.0.0.1", False),
        ("", False),
    ],
)
def test_is_loopback_goes_by_address_not_by_prefix(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    "url",
    [
        "ftp://x.example/fhir",
        "x.example/fhir",
        "https://user:pw@x.example/fhir",
        "https://x.example/fhir?a=1",
        "https://x.example/fhir#top",
        "http://[::1/fhir",  # urlsplit refuses it: a ConfigError, not a ValueError
    ],
)
def test_the_client_and_the_settings_refuse_the_same_bases(url: str) -> None:
    for check in (check_base_url, check_server_url, lambda u: FhirClient(u)):
        with pytest.raises(ConfigError) as caught:
            check(url)
        assert caught.value.exit_code == ExitCode.CONFIG


def test_a_refused_base_is_shown_without_its_query_values() -> None:
    with pytest.raises(ConfigError) as caught:
        check_base_url("ftp://x.example/fhir?patient=Jane")
    assert "Jane" not in caught.value.message and "patient=..." in caught.value.message


def test_plain_http_only_to_loopback_unless_insecure() -> None:
    assert check_server_url("http://127.0.0.1:8321/fhir/") == "http://127.0.0.1:8321/fhir"
    with pytest.raises(ConfigError, match=r"refusing plain http:// to fhir\.example"):
        check_server_url("http://fhir.example/fhir")
    assert check_server_url("http://fhir.example/fhir", insecure=True)
    assert plain_http_off_loopback("http://fhir.example/fhir")
    assert not plain_http_off_loopback("http://localhost/fhir")
    assert not plain_http_off_loopback("https://fhir.example/fhir")


def test_same_origin_fills_in_default_ports() -> None:
    assert same_origin("https://x.example/fhir", "https://X.example:443/other")
    assert not same_origin("https://x.example/fhir", "http://x.example/fhir")
    assert not same_origin("https://x.example/fhir", "https://x.example:8443/fhir")
