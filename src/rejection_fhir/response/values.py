"""Typed FHIR R4 answer values: recognising value[x], checking it, showing it, comparing it.

Shared by the answer resolver, the enableWhen evaluator and the conformance checks so that
all three agree on what ``valueDate: "2024-05"`` means.  Nothing here quotes a value in an
error reason: reasons end up in findings, and findings may be logged.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal, InvalidOperation
from typing import Any, Final

#: value[x] key on QuestionnaireResponse.item.answer -> FHIR data type name.
VALUE_TYPES: Final[dict[str, str]] = {
    "valueBoolean": "boolean",
    "valueDecimal": "decimal",
    "valueInteger": "integer",
    "valueDate": "date",
    "valueDateTime": "dateTime",
    "valueTime": "time",
    "valueString": "string",
    "valueUri": "uri",
    "valueAttachment": "Attachment",
    "valueCoding": "Coding",
    "valueQuantity": "Quantity",
    "valueReference": "Reference",
}

#: What a reader sees for an answer whose value cannot be read.
UNREADABLE: Final = "(unreadable answer)"

# FHIR R4 primitive grammars (from the datatypes page), compiled once.
_DATE_RE: Final = re.compile(
    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1]))?)?"
)
_DATETIME_RE: Final = re.compile(
    r"([0-9]([0-9]([0-9][1-9]|[1-9]0)|[1-9]00)|[1-9]000)"
    r"(-(0[1-9]|1[0-2])(-(0[1-9]|[1-2][0-9]|3[0-1])"
    r"(T([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?"
    r"(Z|(\+|-)((0[0-9]|1[0-3]):[0-5][0-9]|14:00)))?)?)?"
)
_TIME_RE: Final = re.compile(r"([01][0-9]|2[0-3]):[0-5][0-9]:([0-5][0-9]|60)(\.[0-9]+)?")
_URI_BAD_RE: Final = re.compile(r"\s")

_INT32_MIN: Final = -(2**31)
_INT32_MAX: Final = 2**31 - 1

#: A date without a time zone could be anywhere on Earth: the largest offset from UTC.
_TZ_SLACK: Final = timedelta(hours=14)
_NO_SLACK: Final = timedelta(0)


def is_number(value: object) -> bool:
    if isinstance(value, bool):
        return False
    if isinstance(value, int | Decimal):
        return not (isinstance(value, Decimal) and not value.is_finite())
    return isinstance(value, float) and math.isfinite(value)


def problem_with_value(key: str, value: object) -> str | None:
    """Why ``value`` is not a valid ``key`` (e.g. valueInteger), or None when it is.

    The reason names the type and the rule, never the value itself.
    """
    if key == "valueBoolean":
        return None if isinstance(value, bool) else "valueBoolean must be true or false"
    if key == "valueInteger":
        if isinstance(value, bool) or not isinstance(value, int):
            return "valueInteger must be a whole number"
        if not _INT32_MIN <= value <= _INT32_MAX:
            return "valueInteger is outside the 32-bit range FHIR allows"
        return None
    if key == "valueDecimal":
        return None if is_number(value) else "valueDecimal must be a finite number"
    if key == "valueDate":
        if (
            not isinstance(value, str)
            or not _DATE_RE.fullmatch(value)
            or parse_temporal(value) is None
        ):
            return "valueDate must be a FHIR date (YYYY, YYYY-MM or YYYY-MM-DD)"
        return None
    if key == "valueDateTime":
        if (
            not isinstance(value, str)
            or not _DATETIME_RE.fullmatch(value)
            or parse_temporal(value) is None
        ):
            return "valueDateTime must be a FHIR dateTime (a time needs seconds and a time zone)"
        return None
    if key == "valueTime":
        if not isinstance(value, str) or not _TIME_RE.fullmatch(value):
            return "valueTime must be a FHIR time (hh:mm:ss)"
        return None
    if key == "valueString":
        if not isinstance(value, str):
            return "valueString must be a string"
        if not value.strip():
            return "valueString must not be empty or only whitespace"
        return None
    if key == "valueUri":
        if not isinstance(value, str) or not value or _URI_BAD_RE.search(value):
            return "valueUri must be a non-empty string without whitespace"
        return None
    if key in ("valueAttachment", "valueCoding", "valueQuantity", "valueReference"):
        if not isinstance(value, dict):
            return f"{key} must be a JSON object"
        if key == "valueCoding" and not any(
            isinstance(value.get(k), str) and value.get(k) for k in ("code", "display")
        ):
            return "valueCoding needs a code or a display"
        if key == "valueQuantity" and "value" in value and not is_number(value["value"]):
            return "valueQuantity.value must be a finite number"
        if key == "valueReference" and not any(
            value.get(k) for k in ("reference", "identifier", "display")
        ):
            return "valueReference needs a reference, an identifier or a display"
        return None
    return f"{key} is not an answer type in FHIR R4"


# --------------------------------------------------------------------------- display


def format_number(value: object) -> str:
    if isinstance(value, float):
        # repr gives the shortest round-tripping form (0.1, not 0.1000000000000000055...).
        text = repr(value)
        return text[:-2] if text.endswith(".0") else text
    if isinstance(value, Decimal):
        return format(value, "f")
    return str(value)


def coding_label(coding: Mapping[str, Any]) -> str:
    display = coding.get("display")
    if isinstance(display, str) and display:
        return display
    code = coding.get("code")
    if isinstance(code, str) and code:
        return code
    return "(no code)"


def quantity_label(quantity: Mapping[str, Any], default_unit: str | None = None) -> str:
    number = quantity.get("value")
    parts = []
    comparator = quantity.get("comparator")
    if isinstance(comparator, str):
        parts.append(comparator)
    parts.append(format_number(number) if number is not None else "?")
    unit = quantity.get("unit") or quantity.get("code") or default_unit
    if isinstance(unit, str) and unit:
        return f"{''.join(parts)} {unit}"
    return "".join(parts)


def attachment_label(attachment: Mapping[str, Any]) -> str:
    title = attachment.get("title")
    if isinstance(title, str) and title:
        return title
    url = attachment.get("url")
    if isinstance(url, str) and url:
        return url
    content_type = attachment.get("contentType")
    if isinstance(content_type, str) and content_type:
        return f"Attachment ({content_type})"
    return "Attachment"


def reference_label(reference: Mapping[str, Any]) -> str:
    for key in ("display", "reference"):
        text = reference.get(key)
        if isinstance(text, str) and text:
            return text
    identifier = reference.get("identifier")
    if isinstance(identifier, dict):
        value = identifier.get("value")
        if isinstance(value, str) and value:
            return value
    return "(reference)"


def display_value(key: str, value: object) -> str:
    """A human-readable form of one answer value; never raises on malformed input."""
    if key == "valueBoolean":
        if value is True:
            return "Yes"
        if value is False:
            return "No"
    elif key in ("valueDecimal", "valueInteger"):
        if isinstance(value, int | float | Decimal) and not isinstance(value, bool):
            return format_number(value)
    elif isinstance(value, dict):
        if key == "valueCoding":
            return coding_label(value)
        if key == "valueQuantity":
            return quantity_label(value)
        if key == "valueAttachment":
            return attachment_label(value)
        if key == "valueReference":
            return reference_label(value)
    elif isinstance(value, str):
        return value
    return UNREADABLE


# --------------------------------------------------------------------------- numbers


def to_decimal(value: object) -> Decimal | None:
    if isinstance(value, bool):
        return None
    if isinstance(value, Decimal):
        return value if value.is_finite() else None
    if isinstance(value, int):
        return Decimal(value)
    if isinstance(value, float) and math.isfinite(value):
        # Through str so that 0.1 means 0.1, as the JSON author wrote it.
        return Decimal(repr(value))
    if isinstance(value, str):
        try:
            number = Decimal(value)
        except InvalidOperation:
            return None
        return number if number.is_finite() else None
    return None


def same_unit(a: Mapping[str, Any], b: Mapping[str, Any]) -> bool:
    """Whether two Quantities are in the same unit (this engine converts no units)."""
    code_a, code_b = a.get("code"), b.get("code")
    if code_a is not None and code_b is not None:
        return bool(code_a == code_b and a.get("system") == b.get("system"))
    unit_a, unit_b = a.get("unit") or code_a, b.get("unit") or code_b
    return unit_a is None or unit_b is None or unit_a == unit_b


# --------------------------------------------------------------------------- date and time


@dataclass(frozen=True, slots=True)
class Temporal:
    """A FHIR date or dateTime as the interval [lo, hi) of instants it may denote.

    Zone-less values (dates, and dateTimes without a zone, which FHIR forbids but clients
    send) are read as UTC; :func:`compare_temporal` widens them when the other side has a
    zone.  ``key`` is the literal's own fields, to compare two values of the same
    precision exactly (two birthdays written as dates are equal when they read the same).
    """

    lo: datetime
    hi: datetime
    precision: int  # 1 year, 2 month, 3 day, 4 second or finer
    has_zone: bool
    key: tuple[int, ...]


def _add_months(moment: datetime, months: int) -> datetime:
    month_index = moment.month - 1 + months
    return moment.replace(year=moment.year + month_index // 12, month=month_index % 12 + 1)


def parse_temporal(text: str) -> Temporal | None:
    """Parse a FHIR date or dateTime; None when it is not one (or names a day that never was)."""
    if not isinstance(text, str):
        return None
    try:
        if len(text) == 4 and text.isdigit():
            lo = datetime(int(text), 1, 1, tzinfo=UTC)
            hi = lo.replace(year=lo.year + 1) if lo.year < 9999 else lo
            return Temporal(lo, hi, 1, False, (lo.year,))
        if len(text) == 7 and text[4] == "-":
            lo = datetime(int(text[:4]), int(text[5:7]), 1, tzinfo=UTC)
            hi = _add_months(lo, 1) if (lo.year, lo.month) != (9999, 12) else lo
            return Temporal(lo, hi, 2, False, (lo.year, lo.month))
        if len(text) == 10:
            if text[4] != "-" or text[7] != "-":
                return None
            lo = datetime(int(text[:4]), int(text[5:7]), int(text[8:10]), tzinfo=UTC)
            return Temporal(lo, lo + timedelta(days=1), 3, False, (lo.year, lo.month, lo.day))
        if len(text) > 10 and text[10] == "T":
            return _parse_datetime(text)
    except ValueError:
        return None
    return None


def _parse_datetime(text: str) -> Temporal | None:
    body = text
    zone: timezone | None = None
    if body.endswith("Z"):
        zone, body = UTC, body[:-1]
    elif len(body) > 6 and body[-6] in "+-" and body[-3] == ":":
        sign = 1 if body[-6] == "+" else -1
        offset = timedelta(hours=int(body[-5:-3]), minutes=int(body[-2:]))
        zone, body = timezone(sign * offset), body[:-6]
    fraction = ""
    if "." in body:
        body, fraction = body.split(".", 1)
        if not fraction.isdigit():
            return None
    if len(body) != 19:
        return None
    second = int(body[17:19])
    # A leap second (":60") is legal FHIR; fold it into the next second for arithmetic.
    base = datetime(
        int(body[:4]),
        int(body[5:7]),
        int(body[8:10]),
        int(body[11:13]),
        int(body[14:16]),
        min(second, 59),
        tzinfo=zone or UTC,
    )
    if second == 60:
        base += timedelta(seconds=1)
    micro = int((fraction + "000000")[:6]) if fraction else 0
    lo = (base + timedelta(microseconds=micro)).astimezone(UTC)
    step = (
        timedelta(seconds=1)
        if not fraction
        else timedelta(microseconds=max(1, 10 ** (6 - min(len(fraction), 6))))
    )
    hi = lo + step
    key = (
        lo.year,
        lo.month,
        lo.day,
        lo.hour,
        lo.minute,
        lo.second,
        lo.microsecond,
    )
    return Temporal(lo, hi, 4, zone is not None, key)


def compare_temporal(a: Temporal, b: Temporal) -> int | None:
    """-1, 0 or 1; None when the two could be in either order (precision or zone unknown)."""
    if a.precision == b.precision and a.has_zone == b.has_zone:
        # Same precision and zoning: the literals compare field by field.
        return (a.key > b.key) - (a.key < b.key)
    # A zone-less value could be anywhere on Earth relative to a zoned one.
    slack = _TZ_SLACK if a.has_zone != b.has_zone else _NO_SLACK
    if a.hi + slack <= b.lo:
        return -1
    if a.lo >= b.hi + slack:
        return 1
    return None


def parse_time(text: object) -> tuple[int, int, int, Decimal] | None:
    if not isinstance(text, str) or not _TIME_RE.fullmatch(text):
        return None
    fraction = Decimal("0." + text[9:]) if len(text) > 8 else Decimal(0)
    return int(text[0:2]), int(text[3:5]), int(text[6:8]), fraction


def now_utc() -> datetime:
    return datetime.now(UTC)
