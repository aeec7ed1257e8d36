"""Finding a worksheet by the name a person types.

Commands take the worksheet name (``rejection-log``, the file name and the Questionnaire's
``id``); the FHIR ``name`` (``RejectionLog``) works too, as does any spelling that differs
only in case.  An unknown name gets a did-you-mean from the names that exist.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from rejection_fhir.errors import UsageError


def _names(questionnaire: Mapping[str, Any]) -> list[str]:
    return [
        value
        for value in (questionnaire.get("id"), questionnaire.get("name"))
        if isinstance(value, str) and value
    ]


def find_worksheet(questionnaires: Sequence[Mapping[str, Any]], name: str) -> Mapping[str, Any]:
    """The Questionnaire whose id (worksheet name) or FHIR name is ``name``."""
    for exact in (True, False):
        for questionnaire in questionnaires:
            for known in _names(questionnaire):
                if known == name if exact else known.lower() == name.lower():
                    return questionnaire
    shown = []
    for questionnaire in questionnaires:
        names = _names(questionnaire)
        if names:
            both = len(set(names)) > 1
            shown.append(f"{names[0]} ({names[1]})" if both else names[0])
    raise unknown_worksheet(name, [n for q in questionnaires for n in _names(q)], shown=shown)


def unknown_worksheet(
    name: str, known: Iterable[str], *, shown: Iterable[str] | None = None
) -> UsageError:
    """``no worksheet named 'x'``, with the closest known names and the full list
    (``shown``, else ``known``)."""
    known = sorted(set(known))
    listed = sorted(shown) if shown is not None else known
    guesses = difflib.get_close_matches(name, known, n=2, cutoff=0.5)
    if not guesses:
        by_lower = {k.lower(): k for k in known}
        guesses = [
            by_lower[g] for g in difflib.get_close_matches(name.lower(), list(by_lower), n=2)
        ]
    guess = f"; did you mean {' or '.join(repr(g) for g in guesses)}?" if guesses else ""
    return UsageError(
        f"no worksheet named {name!r}{guess}",
        hint=f"known worksheets: {', '.join(listed) or 'none'} (rejection-fhir list shows them)",
    )
