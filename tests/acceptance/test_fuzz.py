"""A short schemathesis run against a real ``spillway serve``: no answer is a 5xx, and every
answer is one the OpenAPI document (``/docs``) describes: its status, headers and body schema.

The same as ``make fuzz`` (scripts/fuzz.py), bounded to about a minute; ``make fuzz`` runs
longer. A failure prints schemathesis' report (with a curl line per failing case) and the
server's log.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
FUZZ_SECONDS = 60


@pytest.mark.slow
def test_schemathesis_finds_no_server_error() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(ROOT / "scripts" / "fuzz.py"),
            "--max-time",
            str(FUZZ_SECONDS),
        ],
        capture_output=True,
        text=True,
        timeout=FUZZ_SECONDS + 120,
        check=False,
    )
    output = done.stdout + done.stderr
    assert done.returncode == 0, output[-30_000:]
    assert "fuzz: 0 operation(s) with failures, server up" in output, output[-30_000:]
