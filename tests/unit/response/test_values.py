"""FHIR primitive values: validity, display, and comparing dates of different precision."""

from __future__ import annotations

from decimal import Decimal

import pytest

from rejection_fhir.response.values import (
    compare_temporal,
    display_value,
    format_number,
    parse_temporal,
    problem_with_value,
)


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("valueBoolean", False),
        ("valueInteger", -2147483648),
        ("valueDecimal", 0),
        ("valueDecimal", Decimal("1.50")),
        ("valueDate", "2024"),
        ("valueDate", "2024-02"),
        ("valueDate", "2024-02-29"),
        ("valueDateTime", "2024-02-29"),
        ("valueDateTime", "2024-02-29T23:59:60Z"),  # a leap second is legal
        ("valueDateTime", "2024-02-29T10:00:00.125+14:00"),
        ("valueTime", "23:59:59.5"),
        ("valueString", "ok"),
        ("valueUri", "urn:uuid:1"),
        ("valueCoding", {"display": "typed"}),
        ("valueQuantity", {"unit": "kg"}),
        ("valueReference", {"identifier": {"value": "1"}}),
        ("valueAttachment", {}),
    ],
)
def test_valid_values(key: str, value: object) -> None:
    assert problem_with_value(key, value) is None


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("valueBoolean", 1),
        ("valueInteger", 2147483648),
        ("valueInteger", 1.0),
        ("valueDecimal", True),
        ("valueDecimal", "1.5"),
        ("valueDecimal", float("inf")),
        ("valueDate", "2023-02-29"),
        ("valueDate", "24-01-01"),
        ("valueDate", "2024-1-1"),
        ("valueDateTime", "2024-02-29T10:00Z"),  # seconds are required
        ("valueDateTime", "2024-02-29T10:00:00"),  # and so is a zone
        ("valueDateTime", "2024-02-29T10:00:00+15:00"),
        ("valueTime", "7:00:00"),
        ("valueString", ""),
        ("valueUri", ""),
        ("valueCoding", "sad"),
        ("valueQuantity", {"value": "1"}),
        ("valueReference", {"type": "Patient"}),
        ("valueMoney", {"value": 1}),
    ],
)
def test_invalid_values_say_why_without_the_value(key: str, value: object) -> None:
    reason = problem_with_value(key, value)
    assert reason is not None
    assert key in reason or "R4" in reason
    if isinstance(value, str) and value:
        assert value not in reason


@pytest.mark.parametrize(
    ("a", "b", "order"),
    [
        ("2024-06-01", "2024-06-02", -1),
        ("2024-06-01", "2024-06-01", 0),
        ("2024-06", "2024-06-15", None),  # the month contains the day
        ("2024-06", "2024-08-15", -1),
        ("2024", "2025-01-01", -1),
        ("2024-06-01T10:00:00Z", "2024-06-01T12:00:00+02:00", 0),
        ("2024-06-01T10:00:00Z", "2024-06-01T10:00:01Z", -1),
        ("2024-06-01T23:00:00Z", "2024-06-02", None),  # the date has no zone
        ("2024-06-01T00:00:00Z", "2024-06-03", -1),
        ("2024-06-01T10:00:00.100Z", "2024-06-01T10:00:00.1Z", 0),
    ],
)
def test_compare_temporal(a: str, b: str, order: int | None) -> None:
    ta, tb = parse_temporal(a), parse_temporal(b)
    assert ta is not None and tb is not None
    assert compare_temporal(ta, tb) == order
    assert compare_temporal(tb, ta) == (None if order is None else -order)


@pytest.mark.parametrize("text", ["", "2024-13", "2024-02-30", "yesterday", "2024-06-01X10"])
def test_parse_temporal_rejects(text: str) -> None:
    assert parse_temporal(text) is None


@pytest.mark.parametrize(
    ("key", "value", "shown"),
    [
        ("valueBoolean", True, "Yes"),
        ("valueBoolean", "true", "(unreadable answer)"),
        ("valueDecimal", 0.1, "0.1"),
        ("valueDecimal", 2.0, "2"),
        ("valueDecimal", Decimal("2.50"), "2.50"),
        ("valueInteger", 7, "7"),
        ("valueQuantity", {"value": 5, "comparator": "<", "unit": "mg"}, "<5 mg"),
        ("valueQuantity", {"value": 5, "code": "mg"}, "5 mg"),
        ("valueAttachment", {"contentType": "image/png"}, "Attachment (image/png)"),
        ("valueReference", {"reference": "Practitioner/1"}, "Practitioner/1"),
        ("valueReference", {"identifier": {"value": "X-1"}}, "X-1"),
        ("valueCoding", {"code": "c"}, "c"),
        ("valueString", {"not": "a string"}, "(unreadable answer)"),
    ],
)
def test_display_value(key: str, value: object, shown: str) -> None:
    assert display_value(key, value) == shown


def test_format_number_keeps_what_was_written() -> None:
    assert [format_number(v) for v in (1e-7, 12.5, -0.0, 10)] == ["1e-07", "12.5", "-0", "10"]
