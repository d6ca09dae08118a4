"""Fuzz the native API with schemathesis against a real ``spillway serve``: no answer may be a
5xx, and every answer must be one the OpenAPI document (``/docs``) says the call gives: a
documented status, content type, headers and body schema.

Run: .venv/bin/python scripts/fuzz.py [--max-time 120] [--workers 2] [--seed N]
[--server-errors-only] [-- ARGS] (``make fuzz``). ARGS after ``--`` go to ``schemathesis run``
as they are.

The server runs on a fresh temporary data dir (SQLite), with a ``local`` destination root, and
the run authenticates with a ``write`` key. A local destination, an export and one of its runs
are made first, and their ids are given to every operation that takes them, so the fuzzer
reaches past the 404 of a random id. Deletes are left out (they would remove those objects).
Exit status 0 means no answer was a 5xx and the server stayed up; otherwise the failures and
the server's log are printed. An operation the fuzzer itself could not generate data for (a
schemathesis error, not an answer) is reported but does not fail the run.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


def _free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _cli(env: dict[str, str], *args: str) -> dict[str, object]:
    done = subprocess.run(
        [str(BIN / "spillway"), *args, "--json"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=120,
    )
    if done.returncode != 0:
        raise SystemExit(f"spillway {' '.join(args)} failed:\n{done.stdout}{done.stderr}")
    result: dict[str, object] = json.loads(done.stdout)
    return result


def _wait(base: str, server: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"spillway serve exited:\n{log.read_text(errors='replace')}")
        try:
            if httpx.get(base + "/healthz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise SystemExit(f"spillway serve did not answer /healthz:\n{log.read_text(errors='replace')}")


def _seed(base: str, token: str) -> dict[str, str]:
    """A destination, an export and a run whose ids the fuzzer uses."""
    headers = {"Authorization": f"Bearer {token}"}
    with httpx.Client(base_url=base, headers=headers, timeout=60) as client:
        destination = client.post(
            "/api/v1/destinations",
            json={"name": "fuzz", "kind": "local", "config": {"path": "fuzz"}, "force": True},
        )
        destination.raise_for_status()
        destination_id = destination.json()["id"]
        export = client.post(
            "/api/v1/exports",
            json={"name": "fuzz", "destination_id": destination_id, "frequency": "daily"},
        )
        export.raise_for_status()
        export_id = export.json()["id"]
        run = client.post(f"/api/v1/exports/{export_id}/run")
        run.raise_for_status()
        client.post("/api/v1/events", json=[{"event_name": "fuzz", "uid": "u"}]).raise_for_status()
        client.put("/api/v1/endpoints/fuzz", json={"channel_type": "SMS"}).raise_for_status()
    return {
        "destination_id": destination_id,
        "export_id": export_id,
        "run_id": run.json()["run_id"],
    }


def _config(workdir: Path, ids: dict[str, str]) -> Path:
    lines = ["[parameters]"]
    lines += [f'"path.{name}" = "{value}"' for name, value in ids.items()]
    path = workdir / "schemathesis.toml"
    path.write_text("\n".join(lines) + "\n")
    return path


# Unless --server-errors-only: every answer is one the schema documents.
CONFORMANCE_CHECKS = (
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
)


def _outcome(junit: Path) -> tuple[list[str], list[str]]:
    """Operations with failures (answers that broke a check) and with fuzzer errors."""
    if not junit.exists():
        return ["(no report: schemathesis did not run)"], []
    failures, errors = [], []
    for case in ET.parse(junit).getroot().iter("testcase"):  # noqa: S314 - our own file
        name = case.get("name", "?")
        if case.find("failure") is not None:
            failures.append(name)
        elif case.find("error") is not None:
            errors.append(name)
    return failures, errors


def main() -> int:
    """Start a server, seed it, run schemathesis, stop the server; schemathesis' exit status."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--max-time", type=int, default=120, help="seconds of fuzzing")
    parser.add_argument("--workers", default="2", help="concurrent schemathesis workers")
    parser.add_argument("--seed", type=int, default=None, help="reproduce a run")
    parser.add_argument("--keep", action="store_true", help="keep the temporary data dir")
    parser.add_argument(
        "--server-errors-only",
        action="store_true",
        help="check only for 5xx, not that each answer's status, headers and body are documented",
    )
    parser.add_argument("extra", nargs="*", help="more `schemathesis run` arguments")
    options = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="spillway-fuzz-"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("SPILLWAY_")}
    env.update(
        SPILLWAY_DATA_DIR=str(workdir / "data"),
        SPILLWAY_LOCAL_ROOT=str(workdir / "local"),
        SPILLWAY_LOG_LEVEL="WARNING",
        PYTHONUNBUFFERED="1",
    )
    (workdir / "local").mkdir()
    _cli(env, "admin", "create-project", "fuzz")
    token = str(_cli(env, "admin", "create-key", "fuzz", "--scope", "write")["token"])
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = workdir / "server.log"
    with log.open("wb") as out:
        server = subprocess.Popen(
            [str(BIN / "spillway"), "serve", "--port", str(port), "--no-worker"],
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        _wait(base, server, log)
        config = _config(workdir, _seed(base, token))
        command = [
            str(BIN / "schemathesis"),
            "--config-file",
            str(config),
            "run",
            f"{base}/openapi.json",
            "--header",
            f"Authorization: Bearer {token}",
            "--checks",
            ",".join(
                ("not_a_server_error", *(() if options.server_errors_only else CONFORMANCE_CHECKS))
            ),
            "--max-time",
            str(options.max_time),
            "--workers",
            options.workers,
            "--request-timeout",
            "30",
            "--exclude-method",
            "DELETE",
            "--suppress-health-check",
            "all",
            "--generation-database",
            "none",
            "--report",
            "junit",
            "--report-junit-path",
            str(workdir / "junit.xml"),
            "--no-color",
            *(["--seed", str(options.seed)] if options.seed is not None else []),
            *options.extra,
        ]
        print("$", " ".join(command).replace(token, "<write key>"), flush=True)
        subprocess.run(command, check=False, cwd=workdir)
        alive = server.poll() is None
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
    failures, errors = _outcome(workdir / "junit.xml")
    for name in errors:
        print(f"note: schemathesis could not test {name} (its own error, not an answer)")
    status = 0 if alive and failures == [] else 1
    print(f"fuzz: {len(failures)} operation(s) with failures, server {'up' if alive else 'DOWN'}")
    if status != 0:
        print("--- server log ---\n" + log.read_text(errors="replace")[-20_000:])
    if options.keep:
        print(f"data dir kept: {workdir}")
    else:
        shutil.rmtree(workdir, ignore_errors=True)
    return status


if __name__ == "__main__":
    sys.exit(main())
