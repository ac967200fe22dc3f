"""The repository stands alone: a clone with nothing beside it has everything its code, tests and docs use."""
from __future__ import annotations

import subprocess

from tests.support import REPO

# Built from pieces so that this file does not match itself.
OUTSIDE = [("..", "/shared"), ("/work", "/shared")]


def test_no_tracked_file_points_outside_the_repository():
    files = subprocess.run(["git", "ls-files", "-z"], cwd=REPO, check=True, capture_output=True,
                           timeout=60).stdout.decode().split("\0")
    assert len(files) > 50  # really the repository's files
    patterns = [(a + b).encode() for a, b in OUTSIDE]
    offenders = []
    for path in filter(None, files):
        file = REPO / path
        if not file.is_file():
            continue  # deleted in the working tree
        for number, line in enumerate(file.read_bytes().splitlines(), 1):
            if any(p in line for p in patterns):
                offenders.append(f"{path}:{number}: {line.decode(errors='replace').strip()[:120]}")
    assert offenders == [], "files refer to a folder outside the repository:\n" + "\n".join(offenders)
