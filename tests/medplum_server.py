"""Find or start the local Medplum test server (servers/medplum) for integration tests.

    from tests.medplum_server import ensure_server
    base_url = ensure_server()   # e.g. "http://127.0.0.1:8103/fhir/R4"

Order: ``RFHIR_MEDPLUM_URL`` as is; else a server already answering on
``RFHIR_MEDPLUM_PORT`` (default 8103); else ``scripts/medplum start`` (installs from npm if
needed; a few seconds).  The server keeps running; ``scripts/medplum stop`` stops it.
Any failure raises ``RuntimeError`` saying what went wrong and where the log is.
"""

from __future__ import annotations

import os

from tests.hapi_server import REPO, find_or_start

SCRIPT = REPO / "scripts" / "medplum"
START_TIMEOUT_S = 300  # npm ci on a cold cache, then 1-5 s to start


def medplum_port() -> str:
    return os.environ.get("RFHIR_MEDPLUM_PORT", "").strip() or "8103"


def ensure_server() -> str:
    configured = os.environ.get("RFHIR_MEDPLUM_URL", "").strip()
    if configured:
        return configured.rstrip("/")
    return find_or_start(
        f"http://127.0.0.1:{medplum_port()}/fhir/R4",
        SCRIPT,
        log=REPO / ".medplum" / f"medplum-{medplum_port()}.log",
        timeout=START_TIMEOUT_S,
    )


if __name__ == "__main__":
    print(ensure_server())
