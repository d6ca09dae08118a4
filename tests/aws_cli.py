"""The AWS CLI the tests run: v1, installed by ``make`` into its own venv (``.tools/awscli``),
so that its pinned botocore never moves the one Spillway and its tests run on."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
AWS = ROOT / ".tools" / "awscli" / "bin" / "aws"
INSTALL = "make .tools/awscli/bin/aws"  # what `make test` runs first
TIMEOUT = 60.0


def aws_binary() -> Path:
    """The ``aws`` executable; fails the test, saying how to install it, when it is missing."""
    if not os.access(AWS, os.X_OK):
        pytest.fail(
            f"the AWS CLI is not installed at {AWS}: run `{INSTALL}` in {ROOT} "
            "(`make test` does it first; it is a separate venv with `pip install awscli`)"
        )
    return AWS


def aws_env(
    key_id: str, secret: str, home: Path, extra: dict[str, str] | None = None
) -> dict[str, str]:
    """An environment with these credentials and nothing of the caller's AWS setup (profiles,
    session tokens, endpoint overrides, config files)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("AWS_")}
    env.update(
        AWS_ACCESS_KEY_ID=key_id,
        AWS_SECRET_ACCESS_KEY=secret,
        AWS_DEFAULT_REGION="us-east-1",
        AWS_CONFIG_FILE=str(home / "config"),
        AWS_SHARED_CREDENTIALS_FILE=str(home / "credentials"),
        AWS_PAGER="",
    )
    if extra:
        env.update(extra)
    return env


def run_aws(
    *args: str,
    env: dict[str, str],
    endpoint_url: str | None = None,
    timeout: float = TIMEOUT,
) -> subprocess.CompletedProcess[str]:
    """``aws ARGS --output json [--endpoint-url URL]``; never raises on the exit status."""
    command = [str(aws_binary()), *args, "--output", "json", "--region", "us-east-1"]
    if endpoint_url is not None:
        command += ["--endpoint-url", endpoint_url]
    return subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def aws_json(*args: str, env: dict[str, str], endpoint_url: str | None = None) -> dict[str, Any]:
    """Run an ``aws`` command that must succeed, and parse what it printed."""
    result = run_aws(*args, env=env, endpoint_url=endpoint_url)
    assert result.returncode == 0, (
        f"aws {' '.join(args)} exited {result.returncode}\n"
        f"stdout: {result.stdout}\nstderr: {result.stderr}"
    )
    parsed: dict[str, Any] = json.loads(result.stdout) if result.stdout.strip() else {}
    return parsed
