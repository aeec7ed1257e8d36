"""The bottom layer: FHIR R4 and HTTP, nothing of worksheets.

Pure modules (no third-party imports, cheap to import from anywhere):

* :mod:`~rejection_fhir.fhir.r4` – FHIR R4 tables: item types, extension URLs, statuses;
* :mod:`~rejection_fhir.fhir.json` – ``JsonDict``, ``as_list``, FHIR JSON equality,
  server-managed elements;
* :mod:`~rejection_fhir.fhir.urls` – server-URL and loopback rules;
* :mod:`~rejection_fhir.fhir.semver` – semantic versions (one precedence rule).

HTTP: :class:`FhirClient` (:mod:`~rejection_fhir.fhir.client`) and the pieces its callers
need.  Create clients with :func:`rejection_fhir.settings.make_client`, not directly: that
is the seam tests swap.  The names below are loaded on first use, so that importing a pure
module of this package does not import ``requests``; there is deliberately no
``TYPE_CHECKING`` import of them either: the mypyc build (``setup.py``), which compiles
modules that import :mod:`~rejection_fhir.fhir.r4`, would then type-check the client
without ``requests``' stubs.  Import them from their modules for precise types.
"""

from __future__ import annotations

from typing import Any

_LAZY = {
    "BasicAuth": "auth",
    "BearerAuth": "auth",
    "Secret": "auth",
    "EntryResult": "client",
    "FhirClient": "client",
    "FhirResponse": "client",
    "RetryPolicy": "client",
    "Timeouts": "client",
    "TransactionResult": "client",
    "is_retry_safe": "client",
}

__all__ = [
    "BasicAuth",
    "BearerAuth",
    "EntryResult",
    "FhirClient",
    "FhirResponse",
    "RetryPolicy",
    "Secret",
    "Timeouts",
    "TransactionResult",
    "is_retry_safe",
]


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    from importlib import import_module

    value = getattr(import_module(f"{__name__}.{module}"), name)
    globals()[name] = value
    return value
