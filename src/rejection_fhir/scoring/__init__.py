"""Outcome-measure scoring: standard instruments, generic option weights, safety alerts.

Pure functions on plain dicts, fast enough for the sync's hot path (lookup tables are
built once per Questionnaire ``url|version``):

* :func:`score_response` - every score a QuestionnaireResponse supports.
* :func:`safety_alerts` - the PHQ-9 item 9 rule on any PHQ-9-shaped response: item 9
  above 0, or not readable with certainty (:mod:`rejection_fhir.scoring.safety`).
* :func:`assess` - both, with or without the response's Questionnaire.

Which instruments are included, their licences and scoring rules with sources:
docs/instruments.md.
"""

from rejection_fhir.scoring.instruments import GAD7, INSTRUMENTS, PHQ9, Band, Instrument
from rejection_fhir.scoring.model import Interpretation, SafetyAlert, Score
from rejection_fhir.scoring.score import assess, safety_alerts, score_response
from rejection_fhir.scoring.tables import QuestionnaireTable, clear_cache, questionnaire_table

__all__ = [
    "GAD7",
    "INSTRUMENTS",
    "PHQ9",
    "Band",
    "Instrument",
    "Interpretation",
    "QuestionnaireTable",
    "SafetyAlert",
    "Score",
    "assess",
    "clear_cache",
    "questionnaire_table",
    "safety_alerts",
    "score_response",
]
