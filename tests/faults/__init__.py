"""Fault injection between our FHIR client and the real HAPI server (see proxy.py)."""
