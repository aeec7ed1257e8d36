"""The catalog: what the project knows about its own worksheets, built once, passed explicitly.

A :class:`Catalog` holds the built Questionnaires, ValueSets and CodeSystem url, and the
project-specific knowledge keyed on them: the worksheet summarizers by canonical url, the
ValueSets scoring may take weights from, and the report's measures for the worksheets'
trended answers (keyed on the built CodeSystem, so ``--base-url`` keeps charts titled
and scaled).  The CLI builds it once per command (:func:`catalog_from_build`)
and hands it to the library functions (``sync``, ``summarize_files``, ``make_report``),
which take it as a parameter: there is no module-level registry to forget to fill.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from rejection_fhir.report.measures import Measure
from rejection_fhir.response.summary import Summarizer, summarizer_for
from rejection_fhir.scoring.tables import value_set_index
from rejection_fhir.worksheet.measures import worksheet_measures
from rejection_fhir.worksheet.summaries import worksheet_summarizers

if TYPE_CHECKING:
    from rejection_fhir.worksheet.project import BuildResult


@dataclass(frozen=True, eq=False)
class Catalog:
    """Built worksheets and what is keyed on them.  Treat as read-only."""

    #: The built Questionnaires (plain dicts, as written to the package), then any others
    #: added (:meth:`with_resources`).
    questionnaires: tuple[Mapping[str, Any], ...] = ()
    #: The url of the CodeSystem the worksheets were built with (None: no worksheets).
    code_system: str | None = None
    #: The report's measures for the worksheets' trended answers, in that CodeSystem.
    measures: tuple[Measure, ...] = ()
    #: Worksheet summarizers by Questionnaire canonical (url, or url|version).
    summarizers: Mapping[str, Summarizer] = field(default_factory=dict)
    #: ValueSets by canonical (url and url|version), for option weights by reference.
    value_sets: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    def summarizer(self, canonical: str | None) -> Summarizer | None:
        """The summarizer for ``url|version`` (exact first, then the bare url), if any."""
        return summarizer_for(self.summarizers, canonical)

    def with_resources(self, resources: Iterable[Mapping[str, Any]]) -> Catalog:
        """This catalog and the Questionnaires and ValueSets among ``resources`` (e.g. the
        files of ``summarize --questionnaire``); the same dicts, not copies."""
        resources = list(resources)
        questionnaires = [r for r in resources if r.get("resourceType") == "Questionnaire"]
        return Catalog(
            questionnaires=(*self.questionnaires, *questionnaires),
            code_system=self.code_system,
            measures=self.measures,
            summarizers=self.summarizers,
            value_sets={**self.value_sets, **value_set_index(resources)},
        )


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
        summarizers=worksheet_summarizers(result.questionnaires),
        value_sets=value_set_index(result.valuesets),
    )


def catalog_of(questionnaires: Iterable[Mapping[str, Any]]) -> Catalog:
    """A catalog of Questionnaires only (no build at hand): summarizers by their urls, no
    worksheet measures (no CodeSystem known)."""
    questionnaires = list(questionnaires)
    return Catalog(
        questionnaires=tuple(questionnaires),
        summarizers=worksheet_summarizers(questionnaires),
    )
