"""A flaky proxy in front of moto: Kinesis PutRecords and Firehose PutRecordBatch calls get some
of their records answered as failed, the way the services do when a shard is throttled.

For each such call the proxy asks ``proxy.choose(call, records)`` which positions fail (and with
which error code), drops those records from the request, signs the smaller request again with
SigV4 (moto checks signatures) and forwards it, then merges moto's answer with failure entries
at the failed positions, fixing FailedRecordCount / FailedPutCount. Every record it receives is
logged in order (``proxy.log``), with the code it failed it with, so a test can check that the
records sent again are exactly the failed ones. Every other request goes through unchanged.

    with flaky_proxy(moto.endpoint, moto.admin_key, moto.admin_secret) as proxy:
        proxy.choose = fail_every(7, calls=2)     # every 7th record of the first two calls
        ... point endpoint_url at proxy.endpoint ...
        assert [seen.data for seen in proxy.failed()] == ...
"""

from __future__ import annotations

import base64
import http.client
import json
import random
import re
import threading
import uuid
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from tests.servers import allow_endpoint

THROUGHPUT = "ProvisionedThroughputExceededException"
UNAVAILABLE = "ServiceUnavailableException"
_MESSAGES = {
    THROUGHPUT: "Rate exceeded for shard in stream (injected by the flaky test proxy).",
    UNAVAILABLE: "Slow down (injected by the flaky test proxy).",
}
# Per operation: the list of per-record results in the answer, and the count of failures.
_ANSWER_KEYS = {
    "PutRecords": ("Records", "FailedRecordCount"),
    "PutRecordBatch": ("RequestResponses", "FailedPutCount"),
}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "x-amz-crc32"}
_SCOPE = re.compile(r"Credential=[^/]+/\d{8}/(?P<region>[^/]+)/(?P<service>[^/]+)/aws4_request")


@dataclass(frozen=True)
class Sent:
    """One record of a call, as the client sent it."""

    data: bytes
    partition_key: str | None  # None for Firehose, which has none


# (call number from 0, the call's records) → {position: error code} of the records to fail.
Chooser = Callable[[int, list[Sent]], Mapping[int, str]]


@dataclass(frozen=True)
class Seen:
    """A record the proxy received, in order, and what it did with it."""

    call: int
    position: int
    operation: str  # PutRecords | PutRecordBatch
    stream: str
    data: bytes  # as sent: Firehose records end with the newline Spillway adds
    partition_key: str | None
    failed: str | None  # the error code the proxy answered, None when forwarded to moto


@dataclass(frozen=True)
class Call:
    """One PutRecords / PutRecordBatch call and moto's HTTP status (0: nothing forwarded)."""

    number: int
    operation: str
    stream: str
    records: int
    failed: dict[int, str] = field(default_factory=dict)
    status: int = 0


def fail_none(call: int, records: list[Sent]) -> dict[int, str]:
    """Fail nothing: the proxy only logs."""
    return {}


def fail_every(nth: int, *, calls: int | None = None, code: str = THROUGHPUT) -> Chooser:
    """Fail positions nth-1, 2*nth-1, … of the first ``calls`` calls (of every call if None)."""

    def choose(call: int, records: list[Sent]) -> dict[int, str]:
        if calls is not None and call >= calls:
            return {}
        return {i: code for i in range(nth - 1, len(records), nth)}

    return choose


def fail_random(
    seed: int,
    rate: float,
    *,
    calls: int | None = None,
    codes: Sequence[str] = (THROUGHPUT, UNAVAILABLE),
) -> Chooser:
    """Fail each record with probability ``rate``, reproducibly for a given seed and call."""

    def choose(call: int, records: list[Sent]) -> dict[int, str]:
        if calls is not None and call >= calls:
            return {}
        rng = random.Random(f"{seed}/{call}")
        return {i: rng.choice(codes) for i in range(len(records)) if rng.random() < rate}

    return choose


class FlakyProxy:
    """The proxy's state: where it listens, the failure choice, and what it saw."""

    def __init__(self, upstream: str, key: str, secret: str) -> None:
        self.upstream = upstream.rstrip("/")
        self.credentials = Credentials(key, secret)
        self.endpoint = ""
        self.choose: Chooser = fail_none
        self.log: list[Seen] = []
        self.calls: list[Call] = []
        self._lock = threading.Lock()

    def reset(self, choose: Chooser = fail_none) -> None:
        """Forget what was seen and set the failure choice (call numbers start at 0 again)."""
        with self._lock:
            self.log, self.calls, self.choose = [], [], choose

    def failed(self) -> list[Seen]:
        """The records answered as failed, in order."""
        with self._lock:
            return [seen for seen in self.log if seen.failed]

    def forwarded(self) -> list[Seen]:
        """The records passed on to moto, in order."""
        with self._lock:
            return [seen for seen in self.log if not seen.failed]

    def handle(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        """Answer one request: flaky for record puts, a plain relay for everything else."""
        operation = headers.get("X-Amz-Target", "").rpartition(".")[2]
        if method == "POST" and operation in _ANSWER_KEYS:
            return self._flaky(operation, path, headers, body)
        return self._forward(method, path, headers, body)

    def _flaky(
        self, operation: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        payload = json.loads(body)
        records = payload["Records"]
        stream = str(payload.get("StreamName") or payload.get("StreamARN") or "")
        stream = stream or str(payload.get("DeliveryStreamName", ""))
        sent = [Sent(base64.b64decode(r["Data"]), r.get("PartitionKey")) for r in records]
        with self._lock:
            number, choose = len(self.calls), self.choose
        failures = {i: code for i, code in choose(number, sent).items() if 0 <= i < len(sent)}
        with self._lock:
            for i, record in enumerate(sent):
                self.log.append(
                    Seen(
                        number,
                        i,
                        operation,
                        stream,
                        record.data,
                        record.partition_key,
                        failures.get(i),
                    )
                )
        kept = [r for i, r in enumerate(records) if i not in failures]
        status, answer_headers, answer = 0, {"Content-Type": headers["Content-Type"]}, {}
        if kept:
            status, answer_headers, raw = self._forward_signed(
                path, headers, json.dumps({**payload, "Records": kept}).encode()
            )
            if status != 200:  # a whole-call error: the client sees moto's own answer
                self._record_call(Call(number, operation, stream, len(sent), failures, status))
                return status, answer_headers, raw
            answer = json.loads(raw)
        self._record_call(Call(number, operation, stream, len(sent), failures, status))
        results_key, count_key = _ANSWER_KEYS[operation]
        upstream = iter(answer.get(results_key, []))
        merged = [
            {"ErrorCode": failures[i], "ErrorMessage": _MESSAGES.get(failures[i], "injected")}
            if i in failures
            else next(upstream)
            for i in range(len(sent))
        ]
        answer[results_key] = merged
        answer[count_key] = sum(1 for entry in merged if entry.get("ErrorCode"))
        if operation == "PutRecordBatch":
            answer.setdefault("Encrypted", False)
        answer_headers.setdefault("x-amzn-RequestId", str(uuid.uuid4()))
        return 200, answer_headers, json.dumps(answer).encode()

    def _record_call(self, call: Call) -> None:
        with self._lock:
            self.calls.append(call)

    def _forward_signed(
        self, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        scope = _SCOPE.search(headers.get("Authorization", ""))
        region = scope["region"] if scope else "us-east-1"
        service = scope["service"] if scope else "kinesis"
        request = AWSRequest(
            method="POST",
            url=self.upstream + path,
            data=body,
            headers={
                "Content-Type": headers["Content-Type"],
                "X-Amz-Target": headers["X-Amz-Target"],
            },
        )
        SigV4Auth(self.credentials, service, region).add_auth(request)
        return self._forward("POST", path, dict(request.prepare().headers.items()), body)

    def _forward(
        self, method: str, path: str, headers: dict[str, str], body: bytes
    ) -> tuple[int, dict[str, str], bytes]:
        target = urlsplit(self.upstream)
        conn = http.client.HTTPConnection(target.hostname or "127.0.0.1", target.port, timeout=30)
        try:
            conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
            names = {name.lower() for name in headers}
            if "host" not in names:
                conn.putheader("Host", target.netloc)
            for name, value in headers.items():
                if name.lower() not in _HOP_BY_HOP:
                    conn.putheader(name, value)
            conn.putheader("Content-Length", str(len(body)))
            conn.endheaders(body)
            response = conn.getresponse()
            data = response.read()
            answer = {k: v for k, v in response.getheaders() if k.lower() not in _HOP_BY_HOP}
            return response.status, answer, data
        finally:
            conn.close()


def _handler(proxy: FlakyProxy) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"  # keep-alive, like the real services

        def _relay(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {name: value for name, value in self.headers.items()}
            status, answer_headers, data = proxy.handle(self.command, self.path, headers, body)
            self.send_response(status)
            for name, value in answer_headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(data)

        do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = _relay

        def log_message(self, format: str, *args: object) -> None:
            return None  # quiet: the proxy's log is ``proxy.log``

    return Handler


@contextmanager
def flaky_proxy(upstream: str, key: str, secret: str) -> Iterator[FlakyProxy]:
    """Run a flaky proxy to ``upstream`` on a free loopback port; re-signs with key/secret."""
    proxy = FlakyProxy(upstream, key, secret)
    server = ThreadingHTTPServer(("127.0.0.1", 0), _handler(proxy))
    server.daemon_threads = True
    proxy.endpoint = f"http://127.0.0.1:{server.server_address[1]}"
    allow_endpoint(proxy.endpoint)  # destinations name it as endpoint_url
    thread = threading.Thread(
        target=server.serve_forever, args=(0.05,), name="flaky-proxy", daemon=True
    )
    thread.start()
    try:
        yield proxy
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)
