"""One importable, typed function per CLI command; ``rejection_fhir.cli`` only parses and prints."""
