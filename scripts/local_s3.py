"""Start (or stop) the local S3-compatible server (moto's server mode) in the background.

    python scripts/local_s3.py start [--port 5055]   # idempotent: does nothing when one already answers
    python scripts/local_s3.py stop
"""
from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

STATE = Path(__file__).resolve().parents[1] / ".local"


def answers(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
        return True
    except OSError:
        return False


def start(port: int) -> None:
    if answers(port):
        print(f"local S3 already answers on 127.0.0.1:{port}")
        return
    STATE.mkdir(exist_ok=True)
    log = open(STATE / "s3.log", "ab")
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=log, stderr=log, start_new_session=True)
    (STATE / "s3.pid").write_text(str(proc.pid))
    for _ in range(120):
        if answers(port):
            print(f"local S3 (moto server, pid {proc.pid}) on http://127.0.0.1:{port}")
            return
        if proc.poll() is not None:
            sys.exit(f"local S3 server exited with {proc.returncode}; see {STATE / 's3.log'}")
        time.sleep(0.25)
    sys.exit("local S3 server did not start within 30 s")


def stop() -> None:
    pid_file = STATE / "s3.pid"
    if pid_file.exists():
        try:
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
        except ProcessLookupError:
            pass
        pid_file.unlink()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("action", choices=("start", "stop"))
    parser.add_argument("--port", type=int, default=int(os.environ.get("MEMORA_S3_PORT", "5055")))
    args = parser.parse_args()
    start(args.port) if args.action == "start" else stop()
