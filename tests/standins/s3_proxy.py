"""A fault-injecting HTTP proxy in front of the local S3 server (moto), for tests.

It forwards every request unchanged (SigV4 signs the Host header, so clients must address the proxy
and the proxy must pass the Host header through), except:
- keys matching a denied prefix get S3's own `403 AccessDenied` XML for writes and deletes
  (a "key policy" that refuses one plan);
- `pause()` makes every request fail with a connection reset until `resume()` (the endpoint is down);
- `fail_next(n, status)` answers the next n requests with `status` (e.g. 500/503 SlowDown);
- `reject_checksums = True` answers an upload (PUT) carrying a flexible checksum (an `x-amz-checksum-*`,
  `x-amz-sdk-checksum-algorithm` or `x-amz-trailer` header, or an aws-chunked body) with `501 NotImplemented`, as
  S3-compatible stores without flexible-checksum support do; `checksum_uploads` counts such uploads either way.
  (DeleteObjects carries a CRC32 in every SDK mode: the operation requires a checksum; it is let through.)
- `delay_prefix(prefix, seconds)` holds writes of keys under the prefix that long before forwarding them
  (a slow store: a build of that plan takes at least that long).

    with S3FaultProxy(upstream="http://127.0.0.1:5055") as proxy:
        proxy.deny_prefix("plans/PLAN-2026-0002/")
        ...  # point the S3 client / connection at proxy.endpoint
"""
from __future__ import annotations

import http.client
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import unquote, urlsplit

_DENIED = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>AccessDenied</Code>"
           "<Message>Access Denied</Message><Resource>{key}</Resource><RequestId>memora-proxy</RequestId></Error>")
_ERROR = ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>{message}</Message>"
          "<RequestId>memora-proxy</RequestId></Error>")


class S3FaultProxy:
    def __init__(self, upstream: str, port: int = 0) -> None:
        parts = urlsplit(upstream)
        self.upstream_host, self.upstream_port = parts.hostname, parts.port or 80
        self.denied: list[str] = []
        self.delays: dict[str, float] = {}
        self.paused = False
        self.failures: list[int] = []
        self.requests = 0
        self.reject_checksums = False
        self.checksum_uploads = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args):  # quiet
                pass

            def _handle(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                with proxy.lock:
                    proxy.requests += 1
                    paused = proxy.paused
                    status = proxy.failures.pop(0) if proxy.failures else None
                if paused:
                    self.close_connection = True
                    self.connection.shutdown(2)
                    return
                path = urlsplit(self.path).path
                key = unquote(path.split("/", 2)[2]) if path.count("/") >= 2 else ""
                names = [n.lower() for n in self.headers.keys()]
                checksum = (any(n.startswith("x-amz-checksum-") or n in ("x-amz-sdk-checksum-algorithm", "x-amz-trailer")
                                for n in names) or "aws-chunked" in (self.headers.get("Content-Encoding") or ""))
                if checksum and self.command == "PUT":
                    with proxy.lock:
                        proxy.checksum_uploads += 1
                    if proxy.reject_checksums:
                        return self._reply(501, _ERROR.format(code="NotImplemented", message=(
                            "Header 'x-amz-checksum-*' or 'x-amz-sdk-checksum-algorithm' not implemented")).encode())
                if status is not None:
                    code = "SlowDown" if status == 503 else "InternalError"
                    return self._reply(status, _ERROR.format(code=code, message="injected fault").encode())
                if self.command in ("PUT", "DELETE") and any(key.startswith(p) for p in proxy.denied):
                    return self._reply(403, _DENIED.format(key=key).encode())
                if self.command == "POST" and "delete" in self.path and any(p.encode() in body for p in proxy.denied):
                    return self._reply(403, _DENIED.format(key="(multi-object delete)").encode())
                if self.command == "PUT":
                    with proxy.lock:
                        delay = max((d for p, d in proxy.delays.items() if key.startswith(p)), default=0.0)
                    time.sleep(delay)
                conn = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port, timeout=60)
                try:
                    conn.request(self.command, self.path, body=body or None, headers=dict(self.headers.items()))
                    response = conn.getresponse()
                    data = response.read()
                    self.send_response(response.status)
                    for name, value in response.getheaders():
                        if name.lower() not in ("transfer-encoding", "connection", "content-length"):
                            self.send_header(name, value)
                    length = response.getheader("Content-Length") if self.command == "HEAD" else None
                    self.send_header("Content-Length", length or str(len(data)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(data)
                finally:
                    conn.close()

            def _reply(self, status, data):
                self.send_response(status)
                self.send_header("Content-Type", "application/xml")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                if self.command != "HEAD":
                    self.wfile.write(data)

            do_GET = do_PUT = do_POST = do_DELETE = do_HEAD = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def start(self) -> "S3FaultProxy":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def __enter__(self) -> "S3FaultProxy":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    def deny_prefix(self, prefix: str) -> None:
        with self.lock:
            self.denied.append(prefix)

    def allow_all(self) -> None:
        with self.lock:
            self.denied.clear()

    def delay_prefix(self, prefix: str, seconds: float) -> None:
        with self.lock:
            self.delays[prefix] = seconds

    def no_delays(self) -> None:
        with self.lock:
            self.delays.clear()

    def pause(self) -> None:
        self.paused = True

    def resume(self) -> None:
        self.paused = False

    def fail_next(self, n: int, status: int = 503) -> None:
        with self.lock:
            self.failures.extend([status] * n)
