"""One semver for publish and the version guard: precedence per semver 2.0.0 §11."""

from __future__ import annotations

import pytest

from rejection_fhir.fhir.semver import bump_between, is_older, parse_version


@pytest.mark.parametrize(
    ("older", "newer"),
    [
        ("1.0.0-rc.1", "1.0.0"),
        ("1.0.0-alpha", "1.0.0-alpha.1"),
        ("1.0.0-rc.2", "1.0.0-rc.10"),  # numeric identifiers compare as numbers
        ("1.0.0-rc.10", "1.0.0-rc.a"),  # and before alphanumeric ones
        ("1.9.9", "1.10.0"),
        ("0.9.0", "1.0.0-rc.1"),
    ],
)
def test_precedence(older: str, newer: str) -> None:
    assert is_older(older, newer)
    assert not is_older(newer, older)


@pytest.mark.parametrize("text", ["1.0", "v1.0.0", "01.0.0", "1.0.0.0", "", None, 1])
def test_what_is_not_a_semantic_version_is_never_older(text: object) -> None:
    assert parse_version(text) is None
    assert not is_older(text, "9.9.9") and not is_older("0.0.1", text)


def test_build_metadata_is_ignored() -> None:
    assert parse_version("1.2.3+build.7") == parse_version("1.2.3")
    assert not is_older("1.2.3+a", "1.2.3+b")


def test_bump_between() -> None:
    v = parse_version
    assert bump_between(v("1.2.3"), v("2.0.0")) == "major"  # type: ignore[arg-type]
    assert bump_between(v("1.2.3"), v("1.3.0")) == "minor"  # type: ignore[arg-type]
    assert bump_between(v("1.2.3"), v("1.2.4")) == "patch"  # type: ignore[arg-type]
    assert bump_between(v("1.2.3-rc.1"), v("1.2.3")) == "none"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("text", "ok"),
    [
        ("1.0.0", True),
        ("0.1.0-rc.1", True),
        ("1.0.0+build", False),  # same precedence as 1.0.0: two versions would collide
        (" 1.0.0", False),
        ("1.0", False),
        ("01.0.0", False),
        (None, False),
    ],
)
def test_is_semver_as_a_worksheet_version_must_be_written(text: object, ok: bool) -> None:
    from rejection_fhir.fhir.semver import is_semver

    assert is_semver(text) is ok
