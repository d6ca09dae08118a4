"""The first validation steps of every AWS kind: credentials → role → External ID."""

from __future__ import annotations

import re
import secrets

import botocore.exceptions

from spillway.destinations.aws.client import (
    AwsAuth,
    Failure,
    NotAwsResponse,
    error_code,
    explain,
    explain_own,
    is_aws_endpoint,
    is_unreachable,
    unreachable,
)
from spillway.destinations.aws.config import AssumeRole
from spillway.destinations.base import Check, CheckStatus, skip_rest
from spillway.errors import SpillwayError

IDENTITY_CHECKS = ("credentials", "role", "external_id")
# What an endpoint without STS answers to GetCallerIdentity.
_NO_STS = ("NotImplemented", "InvalidAction", "404", "MethodNotAllowed")
_ARN = re.compile(r"arn:aws[a-z-]*:(iam|sts)::\d{12}:[\w+=,.@/-]{1,512}")


def identity_checks(auth: AwsAuth, *, service: str, target: str, proof: str) -> list[Check]:
    """credentials → role → external_id, stopping at the first failure.

    ``service`` names the service in messages, ``target`` what the role protects ("your
    bucket"), ``proof`` the later check that proves credentials where there is no STS.
    """
    if auth.refusal is not None:  # the operator does not allow this destination (any more)
        return [Check.failed("credentials", auth.refusal)]
    credentials = _credentials(auth, service, proof)
    checks = [credentials]
    if credentials.status is CheckStatus.FAILED:
        return checks
    role = auth.role
    if role is None:
        checks.append(Check.skipped("role", "not used: the destination does not assume a role"))
        checks.append(
            Check.skipped("external_id", "not used: the destination does not assume a role")
        )
        return checks
    assumed = _assume(auth, role, service)
    checks.append(assumed)
    if assumed.status is not CheckStatus.FAILED:
        checks.append(_external_id_enforced(auth, role, service, target))
    return checks


def after_identity(checks: list[Check], later: tuple[str, ...]) -> list[Check] | None:
    """When an identity step failed: the checks so far plus every later step skipped."""
    if checks[-1].status is not CheckStatus.FAILED:
        return None
    rest = IDENTITY_CHECKS[len(checks) :] + later
    return checks + skip_rest(rest, checks[-1].name)


def _credentials(auth: AwsAuth, service: str, proof: str) -> Check:
    own = auth.own_identity
    whose = "Spillway's own AWS identity" if own else "the access key"
    try:
        identity = auth.identity_sts().get_caller_identity()
    except botocore.exceptions.NoCredentialsError:
        return Check.failed(
            "credentials",
            "Spillway's own AWS identity has no credentials: run it with an instance role, "
            "a profile or AWS_* environment variables, or choose another authentication mode",
        )
    except Failure as exc:
        no_sts = isinstance(exc, NotAwsResponse) or error_code(exc) in _NO_STS
        if auth.endpoint_url and not own and no_sts:
            return Check.skipped(
                "credentials",
                f"{auth.endpoint_url} has no STS to ask; {proof} proves the credentials",
            )
        if own and is_unreachable(exc):
            return Check.failed("credentials", explain_own(exc))
        if is_unreachable(exc):  # nothing answered, so nothing judged the credentials
            return Check.failed(
                "credentials", f"{unreachable(exc, service)}; the credentials were not tried"
            )
        return Check.failed("credentials", f"{whose} was rejected: {explain(exc, service)}")
    arn = str(identity.get("Arn") or "")
    if not (auth.trusted or own) or not _ARN.fullmatch(arn):
        arn = "unknown ARN"  # only an ARN, and only from an endpoint the operator stands behind
    return Check.passed("credentials", f"AWS accepted {whose} ({arn})")


def _assume(auth: AwsAuth, role: AssumeRole, service: str) -> Check:
    try:
        found = auth.session.get_credentials()  # building the session assumes the role
        if found is None:
            raise botocore.exceptions.NoCredentialsError()
    except (SpillwayError, *Failure) as exc:
        said = str(exc) if isinstance(exc, SpillwayError) else explain(exc, service)
        return Check.failed(
            "role",
            f"{said} A new role can take a few seconds to propagate: retry validation in a minute.",
        )
    return Check.passed("role", f"assumed {role.role_arn} with the project's External ID")


def _external_id_enforced(auth: AwsAuth, role: AssumeRole, service: str, target: str) -> Check:
    sts = auth.own_sts()
    if not is_aws_endpoint(sts.meta.endpoint_url):
        return Check.skipped(
            "external_id",
            "Spillway's STS, as the operator set it up, is not AWS's and does not evaluate "
            "trust policies, so Spillway cannot prove the role requires its External ID",
        )
    try:
        sts.assume_role(
            RoleArn=role.role_arn,
            RoleSessionName="spillway-external-id-check",
            ExternalId="spillway-wrong-" + secrets.token_hex(8),
            DurationSeconds=900,
        )
    except Failure as exc:
        if error_code(exc) in ("AccessDenied", "AccessDeniedException"):
            return Check.passed("external_id", "the role refuses a wrong External ID, as it must")
        return Check.skipped("external_id", f"could not test the External ID: {explain_own(exc)}")
    return Check.failed(
        "external_id",
        f"{role.role_arn} can be assumed with a wrong External ID: its trust policy must have "
        f'the condition {{"StringEquals": {{"sts:ExternalId": "{auth.external_id}"}}}} so no '
        f"other Spillway customer can make Spillway write into {target}",
    )
