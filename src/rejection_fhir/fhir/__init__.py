"""FHIR REST access: :class:`FhirClient` and the pieces its callers need.

Create clients with :func:`rejection_fhir.settings.make_client`, not directly: that is the
seam tests swap.
"""

from rejection_fhir.fhir.auth import BasicAuth, BearerAuth, Secret
from rejection_fhir.fhir.client import (
    EntryResult,
    FhirClient,
    FhirResponse,
    RetryPolicy,
    Timeouts,
    TransactionResult,
    is_retry_safe,
)

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
