"""EHR stage: a summarised QuestionnaireResponse → DocumentReference, Observations, Provenance."""
