"""A local stand-in for Cloudflare's zone purge API (``POST /client/v4/zones/{zone_id}/purge_cache``).

Runs a ``ThreadingHTTPServer`` on 127.0.0.1 in a background thread and answers the way Cloudflare's API
documentation and observed responses describe: the v4 envelope ``{"success", "errors": [{"code", "message"}],
"messages", "result"}``; bearer-token auth; exactly one of files / prefixes / tags / hosts (or
purge_everything); a per-request item limit; 429 with ``Retry-After``.

    with CloudflareStandIn(token="t", zone_id="z") as cf:
        cf.fail_next(("429", 2), ("5xx", 503), ("timeout", 1.0))
        ...  # point the client at cf.url
        cf.purged_files, cf.requests, cf.calls

Standalone, for local Airflow runs (serves until killed)::

    python -m tests.standins.cloudflare --port 8788 --token X --zone Z

Error codes used (see the report accompanying this file for what is documented and what is a stand-in choice):
  971   429 "Please wait and consider throttling your request speed"   (observed API rate-limit body)
  6003  400 "Invalid request headers" / chain 6111 "Invalid format for Authorization header" (missing/malformed)
  10000 403 "Authentication error"                                      (well-formed but wrong token)
  7003  400 "Could not route to …, perhaps your object identifier is invalid?" + 7000 "No route for that URI"
  7000  404 "No route for that URI"                                     (any other path)
  7001  405 "Method … not available for that URI."
  6007  400 "Malformed JSON in request body"
  1012  400 'Request must contain one of "purge_everything", "files", "tags", "hosts" or "prefixes"'
  1014  400 '"files", "tags", or "hosts" must be an array'
  TOO_MANY_ITEMS_CODE 400 too many files/prefixes in one request (code not found in the docs; stand-in choice)
"""
from __future__ import annotations

import argparse
import json
import re
import signal
import sys
import threading
import time
import uuid
from collections import deque
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

TOO_MANY_ITEMS_CODE = 1016  # not confirmed by Cloudflare's docs; clients must not depend on the number
RATE_LIMIT_CODE = 971
_PATH_RE = re.compile(r"^/client/v4/zones/([^/]+)/purge_cache/?$")
_PURGE_KINDS = ("files", "prefixes", "tags", "hosts")


def envelope_error(*errors: tuple[int, str], chain: list[tuple[int, str]] | None = None) -> dict[str, Any]:
    errs: list[dict[str, Any]] = [{"code": code, "message": msg} for code, msg in errors]
    if chain and errs:
        errs[0]["error_chain"] = [{"code": c, "message": m} for c, m in chain]
    return {"success": False, "errors": errs, "messages": [], "result": None}


class CloudflareStandIn:
    def __init__(self, token: str = "test-token", zone_id: str = "test-zone", max_files: int = 30, port: int = 0,
                 *, max_prefixes: int | None = None, host: str = "127.0.0.1"):
        self.token = token
        self.zone_id = zone_id
        self.max_files = max_files
        self.max_prefixes = max_prefixes if max_prefixes is not None else max_files
        self._host = host
        self._port = port
        self._lock = threading.Lock()
        self._faults: deque[tuple[str, float]] = deque()
        self._requests: list[dict[str, Any]] = []
        self._calls: list[dict[str, Any]] = []
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    # -- lifecycle ---------------------------------------------------------------------------------------------
    def start(self) -> "CloudflareStandIn":
        if self._server is not None:
            return self
        standin = self

        class Handler(_Handler):
            owner = standin

        server = ThreadingHTTPServer((self._host, self._port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05},
                                        name="cloudflare-standin", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        server, self._server = self._server, None
        if server is None:
            return
        server.shutdown()
        server.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def __enter__(self) -> "CloudflareStandIn":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("stand-in not started")
        return self._server.server_address[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def endpoint(self) -> str:
        return f"{self.url}/client/v4/zones/{self.zone_id}/purge_cache"

    # -- scripting and inspection ------------------------------------------------------------------------------
    def fail_next(self, *responses: tuple[str, float]) -> None:
        """Queue faults, consumed one per incoming request, in order:
        ("429", retry_after_seconds) | ("5xx", status) | ("timeout", seconds: sleep, then answer normally)."""
        for kind, value in responses:
            if kind not in ("429", "5xx", "timeout"):
                raise ValueError(f"unknown fault {kind!r}")
            if kind == "5xx" and not 500 <= int(value) <= 599:
                raise ValueError(f"5xx fault needs a status 500-599, got {value!r}")
        with self._lock:
            self._faults.extend(responses)

    def reset(self) -> None:
        with self._lock:
            self._faults.clear()
            self._requests.clear()
            self._calls.clear()

    @property
    def requests(self) -> list[dict[str, Any]]:
        """Every accepted purge body, in order."""
        with self._lock:
            return [dict(r) for r in self._requests]

    @property
    def calls(self) -> list[dict[str, Any]]:
        """Every request received: {"method", "path", "status", "fault", "body"} (body parsed when JSON)."""
        with self._lock:
            return [dict(c) for c in self._calls]

    @property
    def purged_files(self) -> list[str]:
        out: list[str] = []
        for body in self.requests:
            for item in body.get("files", []):
                out.append(item["url"] if isinstance(item, dict) else item)
        return out

    @property
    def purged_prefixes(self) -> list[str]:
        return [p for body in self.requests for p in body.get("prefixes", [])]

    # -- internals used by the handler -------------------------------------------------------------------------
    def _next_fault(self) -> tuple[str, float] | None:
        with self._lock:
            return self._faults.popleft() if self._faults else None

    def _record(self, call: dict[str, Any], accepted_body: dict[str, Any] | None) -> None:
        with self._lock:
            call["at"] = time.time()  # when the stand-in received it (the latency benchmark reads it)
            self._calls.append(call)
            if accepted_body is not None:
                self._requests.append(accepted_body)


class _Handler(BaseHTTPRequestHandler):
    owner: CloudflareStandIn
    protocol_version = "HTTP/1.1"
    server_version = "cloudflare-standin"

    def log_message(self, format, *args):  # keep test output quiet
        pass

    # every method goes through one place so wrong methods get the envelope too
    def do_POST(self):
        self._handle()

    def do_GET(self):
        self._handle()

    def do_PUT(self):
        self._handle()

    def do_DELETE(self):
        self._handle()

    def do_PATCH(self):
        self._handle()

    def _send(self, status: int, body: dict[str, Any], headers: dict[str, str] | None = None) -> None:
        data = json.dumps(body).encode("utf-8")
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            for k, v in (headers or {}).items():
                self.send_header(k, v)
            self.end_headers()
            self.wfile.write(data)
            self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError, OSError):
            pass  # the client gave up (timeout test)

    def _handle(self) -> None:
        owner = self.owner
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length > 0 else b""
        try:
            parsed: Any = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        call: dict[str, Any] = {"method": self.command, "path": self.path, "status": None, "fault": None,
                                "body": parsed}

        def reply(status: int, body: dict[str, Any], headers: dict[str, str] | None = None,
                  accepted: dict[str, Any] | None = None) -> None:
            call["status"] = status
            owner._record(call, accepted)
            self._send(status, body, headers)

        fault = owner._next_fault()
        if fault is not None:
            kind, value = fault
            call["fault"] = f"{kind}:{value}"
            if kind == "429":
                secs = value
                header = str(int(secs)) if float(secs).is_integer() else str(secs)
                message = "Please wait and consider throttling your request speed"
                return reply(429, envelope_error((RATE_LIMIT_CODE, message)), {"Retry-After": header})
            if kind == "5xx":
                status = int(value)
                return reply(status, envelope_error((status, HTTPStatus(status).phrase)))
            if kind == "timeout":
                time.sleep(float(value))  # then answer normally; the client has probably given up

        path = self.path.split("?", 1)[0]
        match = _PATH_RE.match(path)
        if not match:
            return reply(404, envelope_error((7000, "No route for that URI")))
        if match.group(1) != owner.zone_id:
            return reply(400, envelope_error(
                (7003, f"Could not route to {path}, perhaps your object identifier is invalid?"),
                (7000, "No route for that URI"),
            ))
        if self.command != "POST":
            return reply(405, envelope_error((7001, f"Method {self.command} not available for that URI.")))

        auth = self.headers.get("Authorization")
        if not auth or not auth.startswith("Bearer ") or not auth[len("Bearer "):].strip():
            return reply(400, envelope_error((6003, "Invalid request headers"),
                                             chain=[(6111, "Invalid format for Authorization header")]))
        if auth[len("Bearer "):].strip() != owner.token:
            return reply(403, envelope_error((10000, "Authentication error")))

        if raw and parsed is None:
            return reply(400, envelope_error((6007, "Malformed JSON in request body")))
        body = parsed if isinstance(parsed, dict) else {}
        present = [k for k in _PURGE_KINDS if k in body]
        everything = body.get("purge_everything") is True
        if len(present) + (1 if everything else 0) != 1:
            return reply(400, envelope_error(
                (1012, 'Request must contain one of "purge_everything", "files", "tags", "hosts" or "prefixes"')))
        if everything:
            return reply(200, _ok(), accepted=body)
        kind = present[0]
        items = body[kind]
        if not isinstance(items, list) or not items:
            return reply(400, envelope_error((1014, f'"{kind}" must be a non-empty array')))
        limit = owner.max_files if kind == "files" else owner.max_prefixes
        if len(items) > limit:
            return reply(400, envelope_error(
                (TOO_MANY_ITEMS_CODE, f"Too many {kind} in one purge request: {len(items)} (maximum {limit})")))
        for item in items:
            if kind == "files":
                url = item.get("url") if isinstance(item, dict) else item
                if not isinstance(url, str) or "://" not in url:
                    return reply(400, envelope_error((1012, f"files entries must be absolute URLs, got {url!r}")))
            elif not isinstance(item, str) or not item:
                return reply(400, envelope_error((1014, f'"{kind}" must be an array of strings')))
            elif kind == "prefixes" and "://" in item:
                # Cloudflare documents prefixes without a scheme ("www.example.com/foo"); strict here on purpose.
                return reply(400, envelope_error((1012, f"prefixes must not include a scheme, got {item!r}")))
        return reply(200, _ok(), accepted=body)


def _ok() -> dict[str, Any]:
    return {"success": True, "errors": [], "messages": [], "result": {"id": uuid.uuid4().hex}}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Local stand-in for Cloudflare's purge_cache API")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8788)
    parser.add_argument("--token", default="test-token")
    parser.add_argument("--zone", default="test-zone")
    parser.add_argument("--max-files", type=int, default=30)
    args = parser.parse_args(argv)
    standin = CloudflareStandIn(token=args.token, zone_id=args.zone, max_files=args.max_files, port=args.port,
                                host=args.host).start()
    print(f"cloudflare stand-in on http://{args.host}:{standin.port}/client/v4/zones/{args.zone}/purge_cache",
          flush=True)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        while not stop.wait(1.0):
            pass
    except KeyboardInterrupt:
        pass
    finally:
        n = len(standin.requests)
        standin.stop()
        print(f"cloudflare stand-in stopped after {n} accepted purge request(s)", file=sys.stderr, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
