"""The preview server over a real loopback socket, with the installed LHC-Forms build.

No browser needed, but marked ``browser``: it needs scripts/install-lforms and opens a
socket, which unit tests may not.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from rejection_fhir.preview.page import LFORMS_FILES
from rejection_fhir.preview.server import serve

pytestmark = pytest.mark.browser


def fetch(base_url: str, path: str, *, method: str = "GET", host: str | None = None):
    parts = urlsplit(base_url)
    conn = http.client.HTTPConnection(parts.hostname, parts.port, timeout=10)
    try:
        # skip_host lets a test send a Host header of its choosing; the path goes out raw.
        conn.putrequest(method, path, skip_host=host is not None, skip_accept_encoding=True)
        if host is not None:
            conn.putheader("Host", host)
        conn.endheaders()
        response = conn.getresponse()
        return response.status, dict(response.getheaders()), response.read()
    finally:
        conn.close()


def test_serves_the_installed_lforms_files(preview_server, harness_questionnaire, lforms_dir):
    base_url = preview_server([harness_questionnaire])
    assert base_url.startswith("http://127.0.0.1:")
    for rel in LFORMS_FILES:
        status, headers, body = fetch(base_url, f"/lforms/{rel}")
        assert status == 200, rel
        assert body == (lforms_dir / rel).read_bytes()
        assert int(headers["Content-Length"]) == len(body)


@pytest.mark.parametrize(
    "path",
    [
        "/lforms/../../../../etc/passwd",
        "/lforms/%2e%2e/%2e%2e/%2e%2e/etc/passwd",
        "/lforms/webcomponent/..%2f..%2fpackage.json",
        "/lforms/package.json",
        "//etc/passwd",
        "/q/..%2f..%2f..%2fetc%2fpasswd",
    ],
)
def test_refuses_paths_outside_the_whitelist(preview_server, harness_questionnaire, path):
    status, _, body = fetch(preview_server([harness_questionnaire]), path)
    assert status == 404
    assert b"root:" not in body and b'"name"' not in body


def test_refuses_a_foreign_host_header(preview_server, harness_questionnaire):
    base_url = preview_server([harness_questionnaire])
    assert fetch(base_url, "/", host="attacker.example")[0] == 421
    assert fetch(base_url, "/", host=urlsplit(base_url).netloc)[0] == 200


def test_head_and_unsupported_methods(preview_server, harness_questionnaire):
    base_url = preview_server([harness_questionnaire])
    status, headers, body = fetch(base_url, "/q/BrowserHarness", method="HEAD")
    assert status == 200 and body == b"" and int(headers["Content-Length"]) > 0
    assert fetch(base_url, "/q/BrowserHarness", method="POST")[0] == 501


def test_port_zero_picks_a_free_port_and_close_releases_it(harness_questionnaire, lforms_dir):
    server, url = serve([harness_questionnaire], lforms_dir=lforms_dir)
    try:
        assert fetch(url, "/")[0] == 200
    finally:
        server.close()
    with pytest.raises(OSError):
        fetch(url, "/")


def test_run_preview_prints_the_url_serves_and_stops_on_ctrl_c(
    harness_questionnaire, lforms_dir, tmp_path
):
    # A real process, because Ctrl-C (SIGINT) is what run_preview must survive cleanly.
    source = tmp_path / "q.json"
    source.write_text(json.dumps(harness_questionnaire))
    script = (
        "import json, sys; from rejection_fhir.preview.server import run_preview; "
        "run_preview([json.load(open(sys.argv[1]))], 'BrowserHarness', 0)"
    )
    env = {**os.environ, "RFHIR_LFORMS_DIR": str(lforms_dir)}
    proc = subprocess.Popen(
        [sys.executable, "-c", script, str(source)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )
    try:
        first_line = proc.stdout.readline()
        match = re.search(r"at (http://127\.0\.0\.1:\d+)/q/BrowserHarness$", first_line.strip())
        assert match, first_line
        status, _, body = fetch(match.group(1), "/q/BrowserHarness")
        assert status == 200 and b"BrowserHarness" in body
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=10) == 0, proc.stderr.read()
        assert "Traceback" not in proc.stderr.read()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
