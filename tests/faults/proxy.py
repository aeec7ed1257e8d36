"""A fault-injecting HTTP proxy that sits between our FHIR client and the real HAPI server.

    plan = FaultPlan([Rule("drop", "POST", "", nth=(1, 3))])       # by schedule
    plan = FaultPlan.random(seed=7, rate=0.3)                      # or at random, seeded
    with FaultProxy("http://127.0.0.1:8080/fhir", plan) as proxy:
        settings = load_settings({"server": proxy.base_url, "timeout": 3}, env={})
        ...
    proxy.injected()   # what it did, request by request

The proxy listens on 127.0.0.1 (port chosen by the OS) under the same base path as the
upstream server, and forwards the ``Host`` header unchanged, so HAPI writes its paging
links against the proxy and every page request passes through it too.

A rule's ``path`` is a regular expression matched in full against the request target
relative to the base: ``""`` is the base itself (transactions), ``"metadata"``,
``"QuestionnaireResponse?_sort=..."``, ``"?_getpages=..."`` (HAPI's next-page links).
``nth`` counts the requests matching the rule's method and path, retries included, from 1.

Faults (:data:`FAULTS`), and whether the request reached the server:

=========  =============================================================  ==============
fault      what the client gets                                           server reached
=========  =============================================================  ==============
429        429 Too Many Requests, ``Retry-After: 1``                      no
500..504   that status with an OperationOutcome (``Retry-After`` on 503)  no
slow       the answer only after ``slow_seconds`` (past its timeout)      yes, committed
reset      status line, headers and half the body, then a TCP reset       yes, committed
truncate   the status with half the JSON; Content-Length fits the cut     yes, committed
drop       the connection closes without a byte of answer                 yes, committed
drop-502   502 Bad Gateway (HTML, as a gateway sends it); answer lost     yes, committed
late       no answer in time: the request reaches the server only when    yes, together
           the client's retry does, and both are processed at once        with the retry
=========  =============================================================  ==============

``late`` is what a server slower than the client's timeout does: the client retries while
the server still works on the first attempt.  Two identical transactions then race on
the server.

Two more behaviours serve the crash tests; they are not in the random mix:
``hold`` forwards, lets the server commit, then waits for :meth:`FaultProxy.release`
before answering (the test kills the client meanwhile); ``hold-before`` waits before
forwarding and then drops the request unsent.
"""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import json
import random
import re
import socket
import struct
import subprocess
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import urlsplit

from rejection_fhir.fhir.client import is_retry_safe

BEFORE_SERVER = ("429", "500", "502", "503", "504")
AFTER_COMMIT = ("slow", "reset", "truncate", "drop", "drop-502")
FAULTS = (*BEFORE_SERVER, *AFTER_COMMIT, "late")
HOLDS = ("hold", "hold-before")

_HOP_BY_HOP = frozenset(
    {
        "connection",
        "keep-alive",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
        "content-length",
        "content-encoding",
        "accept-encoding",
    }
)


@dataclass(frozen=True)
class Rule:
    """Give ``fault`` to the ``nth`` requests matching ``method`` and ``path`` (every one if
    ``nth`` is empty)."""

    fault: str
    method: str = "*"
    path: str = ".*"
    nth: tuple[int, ...] = (1,)

    def __post_init__(self) -> None:
        if self.fault not in FAULTS + HOLDS:
            raise ValueError(f"unknown fault {self.fault!r}; known: {', '.join(FAULTS + HOLDS)}")

    def matches(self, method: str, target: str) -> bool:
        return (self.method in ("*", method)) and re.fullmatch(self.path, target) is not None


@dataclass
class FaultPlan:
    """Scheduled rules first; otherwise, at ``rate``, a fault drawn from ``faults``.

    ``max_in_a_row`` caps consecutive random faults: the client sends one request at a
    time, so consecutive requests are usually retries of the same one, and the cap keeps
    a random mix within what the client's retries can ride out.  Set it higher to make
    the client give up.
    """

    rules: Sequence[Rule] = ()
    rate: float = 0.0
    faults: Sequence[str] = FAULTS
    seed: int | None = None
    max_in_a_row: int = 2
    #: Requests the random mix leaves alone (method, target) -> True.
    spare: Callable[[str, str], bool] | None = None
    _counts: dict[int, int] = field(default_factory=dict, init=False, repr=False)
    _rng: random.Random = field(init=False, repr=False)
    _in_a_row: int = field(default=0, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def __post_init__(self) -> None:
        self._rng = random.Random(self.seed)
        unknown = [f for f in self.faults if f not in FAULTS]
        if unknown:
            raise ValueError(f"unknown faults {unknown}")

    @classmethod
    def random(cls, seed: int, rate: float, faults: Sequence[str] = FAULTS, **kw: Any) -> FaultPlan:
        return cls(rate=rate, faults=tuple(faults), seed=seed, **kw)

    def decide(self, method: str, target: str) -> str | None:
        with self._lock:
            for index, rule in enumerate(self.rules):
                if rule.matches(method, target):
                    self._counts[index] = self._counts.get(index, 0) + 1
                    if not rule.nth or self._counts[index] in rule.nth:
                        return rule.fault
            if self.rate <= 0 or (self.spare is not None and self.spare(method, target)):
                return None
            if self._in_a_row >= self.max_in_a_row:
                self._in_a_row = 0
                return None
            if self._rng.random() < self.rate:
                self._in_a_row += 1
                return self._rng.choice(list(self.faults))
            self._in_a_row = 0
            return None


@dataclass(frozen=True)
class Exchange:
    """One request through the proxy: what it was, what was injected, what the server did."""

    seq: int
    method: str
    target: str
    fault: str | None
    #: The server received the request (and, for a 2xx status, committed it).
    forwarded: bool
    upstream_status: int | None
    #: For a POST: could sending it twice apply it twice?  (None for other methods.)
    retry_safe: bool | None
    started: float
    finished: float
    #: sha256 of the request body: a client's retry sends the same bytes again.
    body_digest: str = ""

    @property
    def committed(self) -> bool:
        return (
            self.forwarded
            and self.upstream_status is not None
            and 200 <= self.upstream_status < 300
        )


def _retry_safe(method: str, target: str, headers: Any, body: bytes) -> bool | None:
    if method != "POST":
        return None
    if target.split("?", 1)[0] == "":
        try:
            bundle = json.loads(body)
        except ValueError:
            return False
        return bool(bundle.get("type") in ("transaction", "batch") and is_retry_safe(bundle))
    if "$" in target:
        return False  # an operation; ours are reads, but the proxy cannot know
    return bool(headers.get("If-None-Exist"))


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True
    proxy: FaultProxy


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: Any) -> None:
        pass  # the proxy's record is the log

    def do_GET(self) -> None:
        self._relay()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_GET

    # -- the exchange ---------------------------------------------------------------------

    def _relay(self) -> None:
        proxy = self.server.proxy
        started = time.monotonic()
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        target = self.path
        if target.startswith(proxy.base_path):
            target = target[len(proxy.base_path) :]
        target = target.lstrip("/")
        fault = proxy.plan.decide(self.command, target)
        seq = proxy._next_seq()  # also counts the exchange as in flight until recorded
        record = dict(
            seq=seq,
            method=self.command,
            target=target,
            fault=fault,
            retry_safe=_retry_safe(self.command, target, self.headers, body),
            started=started,
            body_digest=hashlib.sha256(body).hexdigest(),
        )
        forwarded, status = False, None
        try:
            if fault in BEFORE_SERVER:
                self._refuse(int(fault))  # type: ignore[arg-type]
                return
            if fault == "hold-before":
                proxy._hold(record)
                self._abort(reset=False)
                return
            if fault == "late":
                proxy._wait_for_arrival_after(seq, timeout=proxy.slow_seconds + 5)
            try:
                status, reason, headers, payload = self._forward(body)
            except OSError:
                self._refuse(502)
                return
            forwarded = True
            if fault == "hold":
                proxy._hold({**record, "upstream_status": status})
            if fault == "slow":
                time.sleep(proxy.slow_seconds)
            if fault == "drop" or (fault in ("reset", "truncate") and not payload):
                self._abort(reset=False)
            elif fault == "drop-502":
                self._answer(502, "Bad Gateway", [("Content-Type", "text/html")], _GATEWAY_PAGE)
            elif fault == "reset":
                self._answer(status, reason, headers, payload, cut=len(payload) // 2)
                self._abort(reset=True)
            elif fault == "truncate":
                self._answer(status, reason, headers, payload[: len(payload) // 2])
            else:
                self._answer(status, reason, headers, payload)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client went away (a timeout, or killed)
        finally:
            proxy._record(
                Exchange(
                    forwarded=forwarded,
                    upstream_status=status,
                    finished=time.monotonic(),
                    **record,  # type: ignore[arg-type]
                )
            )

    def _forward(self, body: bytes) -> tuple[int, str, list[tuple[str, str]], bytes]:
        proxy = self.server.proxy
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        # Plain bodies, so that a cut body is cut JSON rather than cut gzip.
        headers["Accept-Encoding"] = "identity"
        if body:
            headers["Content-Length"] = str(len(body))
        upstream = http.client.HTTPConnection(
            proxy.upstream_host, proxy.upstream_port, timeout=proxy.upstream_timeout
        )
        try:
            upstream.request(self.command, self.path, body=body or None, headers=headers)
            answer = upstream.getresponse()
            payload = answer.read()
            kept = [(k, v) for k, v in answer.getheaders() if k.lower() not in _HOP_BY_HOP]
            return answer.status, answer.reason, kept, payload
        finally:
            upstream.close()

    def _answer(
        self,
        status: int,
        reason: str,
        headers: Sequence[tuple[str, str]],
        payload: bytes,
        *,
        cut: int | None = None,
    ) -> None:
        self.send_response(status, reason)
        for name, value in headers:
            if name.lower() not in ("date", "server"):
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload if cut is None else payload[:cut])
        self.wfile.flush()

    def _refuse(self, status: int) -> None:
        outcome = {
            "resourceType": "OperationOutcome",
            "issue": [
                {"severity": "error", "code": "transient", "diagnostics": "injected by FaultProxy"}
            ],
        }
        headers = [("Content-Type", "application/fhir+json;charset=utf-8")]
        if status in (429, 503):
            headers.append(("Retry-After", str(self.server.proxy.retry_after)))
        reason = {429: "Too Many Requests", 500: "Internal Server Error", 502: "Bad Gateway"}
        reason |= {503: "Service Unavailable", 504: "Gateway Timeout"}
        self._answer(status, reason[status], headers, json.dumps(outcome).encode())

    def _abort(self, *, reset: bool) -> None:
        """Close the client's connection: a FIN, or with ``reset`` a TCP RST."""
        self.close_connection = True
        if reset:
            self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        else:
            with contextlib.suppress(OSError):
                self.connection.shutdown(socket.SHUT_RDWR)
        self.connection.close()


_GATEWAY_PAGE = b"<html><body><h1>502 Bad Gateway</h1></body></html>"


class FaultProxy:
    """The proxy: start it (``with`` or :meth:`start`), point the client at :attr:`base_url`."""

    def __init__(
        self,
        upstream: str,
        plan: FaultPlan | None = None,
        *,
        slow_seconds: float = 4.0,
        retry_after: int = 1,
        upstream_timeout: float = 120.0,
    ) -> None:
        parts = urlsplit(upstream.rstrip("/"))
        if parts.scheme != "http" or not parts.hostname:
            raise ValueError(f"FaultProxy forwards to plain http only, not {upstream!r}")
        self.upstream_host = parts.hostname
        self.upstream_port = parts.port or 80
        self.base_path = parts.path
        self.plan = plan or FaultPlan()
        self.slow_seconds = slow_seconds
        self.retry_after = retry_after
        self.upstream_timeout = upstream_timeout
        self.exchanges: list[Exchange] = []
        self._lock = threading.Lock()
        self._arrived = threading.Condition(self._lock)
        self._seq = 0
        self._held = threading.Event()
        self._release = threading.Event()
        self._held_at: dict[str, Any] | None = None
        self._server: _Server | None = None
        self._thread: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------------------

    def start(self) -> FaultProxy:
        server = _Server(("127.0.0.1", 0), _Handler)
        server.proxy = self
        self._server = server
        self._thread = threading.Thread(
            target=server.serve_forever, name="fault-proxy", daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._release.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def __enter__(self) -> FaultProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def port(self) -> int:
        assert self._server is not None, "start the proxy first"
        return int(self._server.server_address[1])

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.base_path}"

    # -- holding (crash tests) ----------------------------------------------------------------

    def wait_held(self, timeout: float) -> dict[str, Any] | None:
        """Wait until a ``hold`` rule holds a request; its record, or None on timeout."""
        if not self._held.wait(timeout):
            return None
        return self._held_at

    def wait_held_while(
        self, process: subprocess.Popen[str], timeout: float
    ) -> dict[str, Any] | None:
        """Wait until a request is held, as long as ``process`` runs (at most ``timeout``
        seconds); the held request's record, or None when it ended or time ran out."""
        deadline = time.monotonic() + timeout
        held = None
        while held is None and process.poll() is None and time.monotonic() < deadline:
            held = self.wait_held(0.1)
        return held

    def release(self) -> None:
        """Let held requests go on (answered, or for ``hold-before`` dropped)."""
        self._release.set()

    def rearm(self, plan: FaultPlan | None = None) -> None:
        """A new plan (default: no faults), and holding armed again for the next run."""
        self.plan = plan or FaultPlan()
        self._held_at = None
        self._held.clear()
        self._release.clear()

    def _hold(self, record: dict[str, Any]) -> None:
        self._held_at = record
        self._held.set()
        self._release.wait(timeout=300)

    # -- the record -----------------------------------------------------------------------

    def _next_seq(self) -> int:
        with self._arrived:
            self._seq += 1
            self._arrived.notify_all()
            return self._seq

    def _wait_for_arrival_after(self, seq: int, timeout: float) -> None:
        with self._arrived:
            self._arrived.wait_for(lambda: self._seq > seq, timeout=timeout)

    def _record(self, exchange: Exchange) -> None:
        with self._arrived:
            self.exchanges.append(exchange)
            self._arrived.notify_all()

    def in_flight(self) -> int:
        """Exchanges begun and not yet finished (a "slow" answer still waiting, say)."""
        with self._lock:
            return self._seq - len(self.exchanges)

    def record(self, wait: float = 5.0) -> list[Exchange]:
        """Every exchange so far, in arrival order.  Waits up to ``wait`` seconds for those
        still in flight: the client may hear of a dropped connection before the proxy has
        written down that it dropped it."""
        with self._arrived:
            self._arrived.wait_for(lambda: self._seq == len(self.exchanges), timeout=wait)
            return sorted(self.exchanges, key=lambda e: e.seq)

    def injected(self) -> list[Exchange]:
        return [e for e in self.record() if e.fault is not None]

    def tally(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for exchange in self.injected():
            assert exchange.fault is not None
            counts[exchange.fault] = counts.get(exchange.fault, 0) + 1
        return dict(sorted(counts.items()))

    def unsafe_posts(self) -> list[Exchange]:
        """POSTs that would apply twice if sent twice (plain creates, unsafe Bundles)."""
        return [e for e in self.record() if e.retry_safe is False]
