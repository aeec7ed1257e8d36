"""The modes benchmark's core split: the server's process on one half, the client on the other."""

from __future__ import annotations

import os
import socket
import subprocess
import sys

import pytest
from benchmarks.modes import Sent, cores_apart, listening_pids, peak_in_flight

LISTENER = (
    "import socket, sys, time\n"
    "s = socket.socket(); s.bind(('127.0.0.1', 0)); s.listen()\n"
    "print(s.getsockname()[1], flush=True); time.sleep(60)\n"
)

# The CI machine has both; there the test runs (and fails without them), never skips.
needs_affinity = pytest.mark.skipif(
    os.environ.get("CI") != "true"
    and (not hasattr(os, "sched_setaffinity") or len(os.sched_getaffinity(0)) < 2),
    reason="needs Linux and two cores",
)


@pytest.fixture
def listener():
    child = subprocess.Popen([sys.executable, "-c", LISTENER], stdout=subprocess.PIPE, text=True)
    port = int(child.stdout.readline())
    yield child, port
    child.kill()
    child.wait()


def test_the_process_listening_on_a_port_is_found(listener):
    child, port = listener
    assert listening_pids(port) == {child.pid}
    with socket.socket() as unused:
        unused.bind(("127.0.0.1", 0))
        assert listening_pids(unused.getsockname()[1]) == set(), "bound, not listening"


@needs_affinity
def test_server_and_client_get_separate_cores_and_theirs_back(listener):
    child, _ = listener
    everything = os.sched_getaffinity(0)
    before = os.sched_getaffinity(child.pid)
    with cores_apart({child.pid}) as why_not:
        assert why_not == ""
        server, client = os.sched_getaffinity(child.pid), os.sched_getaffinity(0)
        assert server and client and not server & client
        assert server | client == everything
    assert os.sched_getaffinity(child.pid) == before
    assert os.sched_getaffinity(0) == everything


def test_without_a_server_process_the_cores_stay_shared_and_it_says_why():
    everything = os.sched_getaffinity(0)
    with cores_apart(set()) as why_not:
        assert why_not
        assert os.sched_getaffinity(0) == everything


def test_curl_gets_the_most_requests_the_sync_had_in_flight():
    sent = [Sent("GET", "u", {}, None, a, b) for a, b in ((0, 3), (1, 2), (1.5, 4), (5, 6))]
    assert peak_in_flight(sent) == 3
