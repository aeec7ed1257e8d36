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
import subprocess

from tests.hapi_server import REPO, answers

SCRIPT = REPO / "scripts" / "medplum"
START_TIMEOUT_S = 300  # npm ci on a cold cache, then 1-5 s to start


def medplum_port() -> str:
    return os.environ.get("RFHIR_MEDPLUM_PORT", "").strip() or "8103"


def ensure_server() -> str:
    configured = os.environ.get("RFHIR_MEDPLUM_URL", "").strip()
    if configured:
        return configured.rstrip("/")
    base_url = f"http://127.0.0.1:{medplum_port()}/fhir/R4"
    if answers(base_url):
        return base_url
    log = REPO / ".medplum" / f"medplum-{medplum_port()}.log"
    try:
        result = subprocess.run(
            ["bash", str(SCRIPT), "start"],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=START_TIMEOUT_S,
            check=False,
        )
    except (subprocess.TimeoutExpired, OSError) as exc:
        raise RuntimeError(f"`scripts/medplum start` failed: {exc}; see {log}") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-20:])
        raise RuntimeError(
            f"`scripts/medplum start` failed (exit {result.returncode}); see {log}\n{tail}"
        )
    printed = result.stdout.strip().splitlines()
    started = printed[-1].strip() if printed else base_url
    if not answers(started):
        raise RuntimeError(f"{started}/metadata does not answer after start; see {log}")
    return started


if __name__ == "__main__":
    print(ensure_server())
