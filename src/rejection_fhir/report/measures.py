"""What the report knows about an Observation code: how to title, scale and shade its chart.

The instruments' total scores (LOINC) are known here; the worksheets' trended answers are
coded in the CodeSystem the clinic built, so their measures come from
:mod:`rejection_fhir.worksheet.measures` and are given to
:func:`~rejection_fhir.report.model.build_report` (``measures=``, the catalog's).  A code
with no measure gets one scaled to its values (:func:`generic_measure`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from rejection_fhir.scoring.instruments import GAD7, PHQ9, Instrument


@dataclass(frozen=True)
class ChartBand:
    """A shaded stretch of a chart's y axis (from an instrument's cut-points,
    :class:`~rejection_fhir.scoring.instruments.Band`): ``low`` (inclusive) to ``high``
    (exclusive, or the axis maximum for the last band)."""

    low: float
    high: float
    code: str
    label: str


@dataclass(frozen=True)
class Measure:
    """What the report knows about one Observation code: how to title and scale it."""

    system: str
    code: str
    title: str
    description: str
    y_min: float
    y_max: float
    ticks: tuple[float, ...]
    axis_label: str
    unit: str = ""
    #: "lower" or "higher" is better, or "" when neither is (e.g. belief strength).
    better: str = ""
    bands: tuple[ChartBand, ...] = ()
    order: int = 100
    #: Column heading for the instance when a chart has several lines ("Emotion").
    series_label: str = "Item"


def _instrument_bands(instrument: Instrument) -> tuple[ChartBand, ...]:
    top = float(instrument.max_weight * len(instrument.items))
    lows = [float(b.low) for b in instrument.bands]
    highs = [*lows[1:], top]
    return tuple(
        ChartBand(
            low, high, b.interpretation.code, b.interpretation.code.replace("-", " ").capitalize()
        )
        for low, high, b in zip(lows, highs, instrument.bands, strict=True)
    )


def _instrument_measure(instrument: Instrument, what: str, order: int) -> Measure:
    top = float(instrument.max_weight * len(instrument.items))
    bands = _instrument_bands(instrument)
    return Measure(
        system=instrument.total["system"],
        code=instrument.total["code"],
        title=f"{instrument.name} total score",
        description=f"{what}; severity bands shaded (LOINC {instrument.total['code']})",
        y_min=0.0,
        y_max=top,
        ticks=(*(b.low for b in bands), top),
        axis_label=f"{instrument.name} score (0–{top:g})",
        better="lower",
        bands=bands,
        order=order,
    )


#: The two instruments' total scores (LOINC), charted whatever the worksheets.  The
#: worksheets' own trended answers are coded in the CodeSystem the clinic built, so their
#: measures come from :mod:`rejection_fhir.worksheet.measures`, keyed on its url, and are
#: given to :func:`build_report` by the caller (the catalog).
INSTRUMENT_MEASURES: tuple[Measure, ...] = (
    _instrument_measure(PHQ9, "Depression symptoms over the last two weeks", 1),
    _instrument_measure(GAD7, "Anxiety symptoms over the last two weeks", 2),
)

MeasureTable = Mapping[tuple[str, str], Measure]


def measure_table(measures: Iterable[Measure] = ()) -> dict[tuple[str, str], Measure]:
    """(system, code) -> measure: the instruments', then ``measures`` (which win)."""
    return {(m.system, m.code): m for m in (*INSTRUMENT_MEASURES, *measures)}


_INSTRUMENTS_BY_CODE = measure_table()


def measure_for(
    system: str, code: str, table: MeasureTable = _INSTRUMENTS_BY_CODE
) -> Measure | None:
    return table.get((system, code))


def band_for(measure: Measure, value: float) -> ChartBand | None:
    chosen = None
    for band in measure.bands:
        if value >= band.low:
            chosen = band
    return chosen


def generic_measure(system: str, code: str, title: str, values: Sequence[float]) -> Measure:
    """An Observation code the report has no table entry for: scale to its values."""
    low = min(0.0, *values)
    high = max(values)
    step = nice_step((high - low) / 5 if high > low else 1.0)
    top = max(step, math.ceil(high / step) * step)
    bottom = math.floor(low / step) * step
    ticks = []
    tick = bottom
    while tick <= top + step / 2:
        ticks.append(round(tick, 6))
        tick += step
    return Measure(system, code, title, "", bottom, top, tuple(ticks), "Value", order=1000)


def nice_step(raw: float) -> float:
    magnitude = 10 ** math.floor(math.log10(raw))
    for factor in (1, 2, 2.5, 5, 10):
        if raw <= factor * magnitude:
            return float(factor * magnitude)
    return float(10 * magnitude)
