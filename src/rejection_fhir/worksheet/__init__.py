"""Everything project-specific: worksheet sources (YAML) → FHIR R4 Questionnaire, CodeSystem
and ValueSets, their rules and versioning, and what is keyed on the built worksheets: their
summaries (:mod:`.summaries`), the report's measures (:mod:`.measures`) and the
:class:`~rejection_fhir.worksheet.catalog.Catalog` that carries both to sync, summarize
and report."""
