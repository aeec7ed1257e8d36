"""Find or start the local HAPI FHIR server for integration tests (plain Python, no pytest).

    from tests.hapi_server import ensure_server
    base_url = ensure_server()   # e.g. "http://127.0.0.1:8080/fhir"

Order:
1. ``RFHIR_TEST_SERVER`` set: that base URL is used as is (nothing is checked or started).
2. A server already answers ``GET http://127.0.0.1:${RFHIR_HAPI_PORT:-8080}/fhir/metadata``
   with 200: its base URL.
3. Otherwise ``scripts/hapi start`` (builds the jar if needed, starts the server in the
   background, waits until it is ready) and its base URL.  The server keeps running after the
   tests; ``scripts/hapi stop`` stops it.

Any failure raises ``RuntimeError`` saying what went wrong and where the log is.
"""

from __future__ import annotations

import os
import subprocess
import urllib.error
import urllib.request
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
HAPI_SCRIPT = REPO / "scripts" / "hapi"

# Cold start: the first Maven build downloads ~330 MB, then the server needs ~20-40 s to boot.
# scripts/hapi's own readiness timeout is 300 s (RFHIR_HAPI_START_TIMEOUT); this one also covers
# the build.
START_TIMEOUT_S = 1200


def hapi_port() -> str:
    return os.environ.get("RFHIR_HAPI_PORT", "").strip() or "8080"


def local_base_url() -> str:
    return f"http://127.0.0.1:{hapi_port()}/fhir"


def answers(base_url: str, timeout: float = 5.0) -> bool:
    """True if ``{base_url}/metadata`` answers 200."""
    request = urllib.request.Request(
        f"{base_url.rstrip('/')}/metadata", headers={"Accept": "application/fhir+json"}
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError, ValueError):
        return False


def ensure_server() -> str:
    """Return the FHIR base URL of a usable server, starting the local HAPI one if needed."""
    configured = os.environ.get("RFHIR_TEST_SERVER", "").strip()
    if configured:
        return configured.rstrip("/")
    if not HAPI_SCRIPT.is_file():
        raise RuntimeError(f"cannot start the HAPI FHIR server: {HAPI_SCRIPT} is missing")
    return find_or_start(
        local_base_url(),
        HAPI_SCRIPT,
        log=REPO / ".hapi" / f"hapi-{hapi_port()}.log",
        timeout=START_TIMEOUT_S,
    )


def find_or_start(base_url: str, script: Path, *, log: Path, timeout: float) -> str:
    """``base_url`` when it answers; else what ``script start`` prints last (its base URL),
    once that answers.  Shared by the local test servers (HAPI, Medplum)."""
    if answers(base_url):
        return base_url
    printed = run_start(script, log=log, timeout=timeout)
    started_url = printed[-1].strip() if printed else base_url
    if not answers(started_url):
        raise RuntimeError(
            f"`scripts/{script.name} start` succeeded but {started_url}/metadata does not answer; "
            f"see {log}"
        )
    return started_url


def run_start(
    script: Path, *, timeout: float, log: Path | None = None, tail_lines: int = 20
) -> list[str]:
    """Run ``script start`` (one of the project's server scripts) and return the lines it
    printed; RuntimeError, with the end of its output, when it fails or takes too long."""
    name = f"scripts/{script.name} start"
    see = f"; see {log}" if log is not None else ""
    try:
        result = subprocess.run(
            ["bash", str(script), "start"],
            cwd=REPO,
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
    except subprocess.TimeoutExpired as exc:
        raise RuntimeError(f"`{name}` did not finish within {timeout} s{see}") from exc
    except OSError as exc:
        raise RuntimeError(f"could not run `{name}`: {exc}") from exc
    if result.returncode != 0:
        tail = "\n".join((result.stderr or result.stdout).strip().splitlines()[-tail_lines:])
        raise RuntimeError(f"`{name}` failed (exit {result.returncode}){see}\n{tail}")
    return result.stdout.strip().splitlines()


if __name__ == "__main__":
    print(ensure_server())
