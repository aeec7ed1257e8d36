"""Authoring stage: worksheet sources (YAML) → FHIR R4 Questionnaire, CodeSystem and ValueSets."""
