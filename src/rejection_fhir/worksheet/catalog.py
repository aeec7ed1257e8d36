"""The catalog: what the project knows about its own worksheets, built once, passed explicitly.

A :class:`Catalog` holds the built Questionnaires (and the CodeSystem url they were built
with), and the project-specific knowledge keyed on them: the report's measures for the
worksheets' trended answers (keyed on the built CodeSystem, so ``--base-url`` keeps
charts titled and scaled).  The CLI builds it once per command (:func:`catalog_from_build`)
and hands it to the library functions (``sync``, ``summarize_files``, ``make_report``),
which take it as a parameter: there is no module-level registry to forget to fill.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from rejection_fhir.report.model import Measure
from rejection_fhir.worksheet.measures import worksheet_measures

if TYPE_CHECKING:
    from rejection_fhir.worksheet.project import BuildResult

JsonDict = dict[str, Any]


@dataclass(frozen=True, eq=False)
class Catalog:
    """Built worksheets and what is keyed on them.  Treat as read-only."""

    #: The built Questionnaires (plain dicts, as written to the package).
    questionnaires: tuple[JsonDict, ...] = ()
    #: The url of the CodeSystem the worksheets were built with (None: no worksheets).
    code_system: str | None = None
    #: The report's measures for the worksheets' trended answers, in that CodeSystem.
    measures: tuple[Measure, ...] = ()


#: No worksheets: generic summaries, the instruments' measures only.
EMPTY = Catalog()


def catalog_from_build(result: BuildResult) -> Catalog:
    """The catalog of one build (``commands.build.build_all``)."""
    url = result.codesystem.get("url") if isinstance(result.codesystem, Mapping) else None
    code_system = url if isinstance(url, str) and url else None
    return Catalog(
        questionnaires=tuple(result.questionnaires),
        code_system=code_system,
        measures=worksheet_measures(code_system) if code_system else (),
    )
