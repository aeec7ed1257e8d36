"""Summaries per second against ``json.loads`` per second, on the same responses.

The goal is the summary itself (:func:`rejection_fhir.response.summary.summarize`, with
the worksheet summarizers registered, as every command has them): at least half the
throughput of merely parsing the responses.  For context the table also shows the
clinical summary (scores and safety flags added) and the whole ``summarize`` command's
work per response (parse, summarise with scores, render JSON).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from benchmarks.report import Row
from benchmarks.timing import cpu_seconds


def run(questionnaires: Sequence[Mapping[str, Any]], *, seed: int, count: int) -> list[Row]:
    from benchmarks.data import responses
    from rejection_fhir.response.questionnaire import QuestionnaireIndex
    from rejection_fhir.response.render import render_json
    from rejection_fhir.response.summary import summarize
    from rejection_fhir.scoring.clinical import clinical_summary

    index = QuestionnaireIndex(questionnaires)
    lines = [
        json.dumps(qr, separators=(",", ":")) for qr in responses(questionnaires, count, seed=seed)
    ]
    parsed = [(qr, index.for_response(qr)) for qr in map(json.loads, lines)]
    assert all(compiled is not None for _, compiled in parsed)

    def loads() -> None:
        for line in lines:
            json.loads(line)

    def summaries() -> None:
        for qr, compiled in parsed:
            summarize(qr, compiled)

    def clinical() -> None:
        for qr, compiled in parsed:
            clinical_summary(qr, compiled)

    def command() -> None:
        for line in lines:
            qr = json.loads(line)
            json.dumps(
                render_json(clinical_summary(qr, index.for_response(qr)).summary),
                ensure_ascii=False,
            )

    baseline = count / cpu_seconds(loads)
    rows = []
    for goal, action, target in (
        ("summarize throughput", summaries, 0.5),
        ("  + scores and safety", clinical, None),
        ("  whole command per response", command, None),
    ):
        measured = count / cpu_seconds(action)
        ratio = measured / baseline
        rows.append(
            Row(
                goal,
                f"{measured:,.0f} resp/s",
                f"{baseline:,.0f} resp/s",
                ratio,
                f">= {target}" if target is not None else "",
                ratio >= target if target is not None else None,
                "baseline: json.loads of the same responses; CPU time, best of 5"
                if target is not None
                else "",
            )
        )
    return rows
