"""Sync stage: QuestionnaireResponses from the source server → summaries and EHR resources."""
