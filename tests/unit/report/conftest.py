"""Fixtures: a ten-week course of care written by the sync's own code, and its report."""

from __future__ import annotations

import datetime as dt

import pytest

from rejection_fhir.report import Report, build_report
from rejection_fhir.worksheet.measures import worksheet_measures
from tests.unit.report.records import CODES, Clinic, course_of_care, of_type

GENERATED = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


@pytest.fixture
def clinic(catalog) -> Clinic:
    return course_of_care(catalog)


def report_of(resources, patient: str = "p1", **kw) -> Report:
    return build_report(
        patient,
        observations=of_type(resources, "Observation"),
        documents=of_type(resources, "DocumentReference"),
        flags=of_type(resources, "Flag"),
        generated_at=GENERATED,
        **{"measures": worksheet_measures(CODES), **kw},
    )


@pytest.fixture
def report(clinic) -> Report:
    return report_of(clinic.resources, server="https://ehr.example.org/fhir")
