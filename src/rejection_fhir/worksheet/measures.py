"""The report's measures for the worksheets' trended answers, keyed on the built CodeSystem.

The worksheets mark some answers ``observation: true`` (questionnaires/*.yaml); the sync
writes each as an Observation coded in the project's CodeSystem, whose url depends on the
canonical base the clinic built with (``--base-url``).  :func:`worksheet_measures` gives
the report how to title and scale each of them under that url, so a clinic's own base
keeps its charts' titles and scales.  The instruments' measures (LOINC) live in
:mod:`rejection_fhir.report.model`.
"""

from __future__ import annotations

from rejection_fhir.report.measures import Measure


def _scale(
    system: str,
    code: str,
    title: str,
    description: str,
    better: str,
    order: int,
    series_label: str = "Item",
) -> Measure:
    return Measure(
        system,
        code,
        title,
        description,
        0.0,
        10.0,
        (0.0, 2.0, 4.0, 6.0, 8.0, 10.0),
        "Rating (0–10)",
        better=better,
        order=order,
        series_label=series_label,
    )


def _percent(system: str, code: str, title: str, description: str, order: int) -> Measure:
    return Measure(
        system,
        code,
        title,
        description,
        0.0,
        100.0,
        (0.0, 25.0, 50.0, 75.0, 100.0),
        "Belief strength (%)",
        unit="%",
        order=order,
    )


def worksheet_measures(code_system: str) -> tuple[Measure, ...]:
    """The trended answers the worksheets write, coded in ``code_system`` (the built
    CodeSystem's url), in the order a clinician reads them (after the instruments)."""
    s = code_system
    return (
        _scale(
            s,
            "worth-impact",
            "Impact on sense of worth",
            "Rejection log: how much the rejection feels like it says about their worth "
            "(0 = nothing, 10 = everything)",
            "lower",
            10,
        ),
        _percent(
            s,
            "belief-strength-before",
            "Core belief strength, before the worksheet",
            "Core beliefs: how strongly the core belief was held before working through it",
            11,
        ),
        _percent(
            s,
            "belief-strength-after",
            "Core belief strength, after the worksheet",
            "Core beliefs: how strongly the core belief was held after working through it",
            12,
        ),
        _scale(
            s,
            "emotion-intensity",
            "Emotion intensity after rejection",
            "Rejection log: intensity of each emotion named (0 = not at all, 10 = strongest)",
            "lower",
            13,
            "Emotion",
        ),
        _scale(
            s,
            "feeling-intensity",
            "Intensity of named feelings",
            "Validate emotions: intensity of each feeling named (0 = not at all, 10 = strongest)",
            "",
            14,
            "Feeling",
        ),
        _scale(
            s,
            "hopefulness",
            "Hopefulness",
            "Reframe and redirect: hopefulness about what is possible now (0–10)",
            "higher",
            15,
        ),
        _scale(
            s,
            "self-kindness",
            "Self-kindness",
            "Self-compassion: how kind they are being to themselves (0–10)",
            "higher",
            16,
        ),
    )
