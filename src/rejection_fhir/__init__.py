"""rejection-fhir: coping-with-rejection worksheets carried into clinical systems over FHIR R4."""

__version__ = "0.1.0"

#: Every resource we build or write is FHIR R4 on the wire.
FHIR_VERSION = "4.0.1"
