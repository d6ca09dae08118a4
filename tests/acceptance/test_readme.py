"""The README's first hour, run as written: every ``sh`` block, in order, in one shell, against a
real ``spillway serve`` and a real moto server, in an empty directory.

Only what must differ on a shared test machine is changed: the ports (8080 and 5000 become free
ones). ``make run`` becomes the command the Makefile's ``run`` target runs (``make -n``),
started in the background; ``moto_server`` likewise. ``.venv`` in the directory is this test
run's virtualenv, which already holds what the README's ``pip install`` lines install.
"""

from __future__ import annotations

import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers import free_port

ROOT = Path(__file__).resolve().parents[2]
README = ROOT / "README.md"
SPILLWAY_PORT = "8080"
MOTO_PORT = "5000"
# `VAR=value … make run [PORT=… HOST=…]` alone on a line: the service, started by `make run`.
MAKE_RUN = re.compile(r"^((?:[A-Z_]+=\S+ )*)make run((?: [A-Z]+=\S+)*)$")
MOTO = re.compile(r"^(\S*moto_server\b.*)$")

# The test's own shell functions: start a long-running command in the background (stopping
# the previous service first), wait for its port, stop everything when the shell ends.
PRELUDE = r"""
set -euo pipefail
cleanup() { for pid in $(jobs -p); do kill "$pid" 2>/dev/null || true; done; wait || true; }
trap cleanup EXIT
background() {  # PORT LOG COMMAND…: run COMMAND in the background, wait for PORT to answer
  local port=$1 log=$2; shift 2
  "$@" >>"$log" 2>&1 &
  for _ in $(seq 600); do
    if curl -s -o /dev/null "http://127.0.0.1:$port/"; then return 0; fi
    sleep 0.1
  done
  echo "$* did not start:" >&2; cat "$log" >&2; return 1
}
serve() {  # PORT COMMAND…: (re)start the service
  if [ -n "${SERVE_PID:-}" ]; then kill "$SERVE_PID"; wait "$SERVE_PID" || true; fi
  background "$1" spillway.log "${@:2}"
  SERVE_PID=$!
}
"""


def sh_blocks(markdown: str) -> list[str]:
    """The fenced ``sh`` blocks of a Markdown text, in order."""
    return re.findall(r"^```sh\n(.*?)^```$", markdown, flags=re.DOTALL | re.MULTILINE)


def make_run_command(make_args: str) -> list[str]:
    """What ``make run ARGS`` runs once installed (``make -n``, the install taken as done)."""
    result = subprocess.run(
        ["make", "-s", "-n", "-o", ".venv/.runtime-stamp", "run", *shlex.split(make_args)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    )
    lines = result.stdout.strip().splitlines()
    assert len(lines) == 1, result.stdout
    return shlex.split(lines[0])


def script(markdown: str, spillway_port: int, moto_port: int) -> str:
    """The README's commands as one shell script, ports replaced, services in the background."""
    text = "\n".join(sh_blocks(markdown))
    text = text.replace(f"127.0.0.1:{SPILLWAY_PORT}", f"127.0.0.1:{spillway_port}")
    text = text.replace(f"127.0.0.1:{MOTO_PORT}", f"127.0.0.1:{moto_port}")
    text = text.replace(f"-p {MOTO_PORT}", f"-p {moto_port}")
    lines = [PRELUDE]
    for line in text.splitlines():
        if match := MAKE_RUN.match(line):
            command = make_run_command(f"{match.group(2)} PORT={spillway_port}")
            env = shlex.split(match.group(1))
            lines.append(shlex.join(["serve", str(spillway_port), "env", *env, *command]))
        elif match := MOTO.match(line):
            lines.append(f"background {moto_port} moto.log {match.group(1)}")
        else:
            lines.append(line)
    return "\n".join(lines) + "\n"


@pytest.mark.slow
def test_readme_first_hour_runs_as_written(tmp_path: Path) -> None:
    markdown = README.read_text()
    assert "make run" in markdown and "moto_server" in markdown
    (tmp_path / ".venv").symlink_to(Path(sys.executable).parent.parent)
    walk = script(markdown, free_port(), free_port())
    (tmp_path / "first-hour.sh").write_text(walk)
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPILLWAY_")}
    result = subprocess.run(
        ["bash", "first-hour.sh"],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=280,
        check=False,
    )
    log = (tmp_path / "spillway.log").read_text() if (tmp_path / "spillway.log").exists() else ""
    report = f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}\nspillway.log:\n{log}"
    assert result.returncode == 0, report
    # The first file is there and DuckDB counted every event: 1 sent by curl + 10,000 demo ones.
    assert re.search(r"^spillway_events/\S+\.json\.gz \d+$", result.stdout, re.MULTILINE), report
    counts = [int(n) for n in re.findall(r"│\s*\S[^│]*│\s*(\d+)\s*│", result.stdout)]
    assert sum(counts) == 10_001, report
    assert "alembic" not in log, log
