"""The operator's limits on the AWS kinds (S3, Kinesis, Firehose): custom endpoints only where the
operator allows, Spillway's own identity never sent to a custom endpoint and only for the
buckets and streams the operator grants a project, and no remote answer echoed back."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import botocore.exceptions
import botocore.session
import pytest
from pydantic import ValidationError

from spillway import destinations as registry
from spillway import netpolicy
from spillway.api import views
from spillway.api.errors import answer_for
from spillway.destinations.aws import service_identity
from spillway.destinations.aws.service_identity import parse_grants
from spillway.destinations.base import (
    CheckStatus,
    DestinationError,
    Needs,
    ObjectStore,
    RecordStream,
    StreamRecord,
    Tenant,
)
from spillway.destinations.kinesis.config import KinesisConfig
from spillway.destinations.s3.config import AccessKey, AssumeRole, S3Config
from spillway.destinations.s3.store import S3Store
from spillway.errors import InputError, SpillwayError
from spillway.model import Actor
from spillway.secrets import SecretBox
from spillway.services import destinations as destination_service
from spillway.services import exports as export_service
from spillway.services.projects import create_project
from spillway.settings import Settings
from spillway.store.db import create_engine, migrate
from tests.integration.destinations.case_s3 import (
    EXTERNAL_ID,
    S3World,
    allow,
    as_operator,
    policy,
)
from tests.integration.exporting import T0, Clock, Setup
from tests.server_moto import Moto
from tests.server_recorder import DENIED, MARKER, Recorder, recorder
from tests.servers import allow_endpoint

ACME = Tenant("a" * 32, "acme", EXTERNAL_ID)
BETA = Tenant("b" * 32, "beta", "spw-beta-external-id")
KEY = {
    "mode": "access_key",
    "access_key_id": "AKIAIOSFODNN7EXAMPLE",
    "secret_access_key": "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
}
SERVICE = {"mode": "service_identity"}


def config_of(kind: str, endpoint_url: str | None, target: str = "spw-target") -> dict[str, Any]:
    """A minimal config of ``kind`` naming ``target`` on ``endpoint_url``."""
    field = {"s3": "bucket", "kinesis": "stream", "firehose": "delivery_stream"}[kind]
    config: dict[str, Any] = {field: target, "endpoint_url": endpoint_url}
    if kind == "s3":
        config["sse"] = "none"
    return config


@pytest.fixture(autouse=True)
def operator_settings() -> Iterator[None]:
    """Each test changes the process's outbound policy and grants; put them back after."""
    policy_before = netpolicy.current()
    grants_before = service_identity._current
    yield
    netpolicy.configure(policy_before)
    service_identity.configure(grants_before)


@pytest.fixture
def listener() -> Iterator[Recorder]:
    """A loopback listener nobody listed, answering an HTML page."""
    with recorder() as seen:
        assert not netpolicy.current().listed(netpolicy.origin_of(seen.url))
        yield seen


def grant(text: str) -> None:
    service_identity.configure(parse_grants(text))


# --- 1. custom endpoints only where the operator allows ---------------------------------------


@pytest.mark.parametrize("kind", ["s3", "kinesis", "firehose"])
@pytest.mark.parametrize(
    "credentials", [KEY, {"mode": "role", "role_arn": "arn:aws:iam::123456789012:role/R"}]
)
def test_an_unlisted_endpoint_is_refused_when_parsed(
    kind: str, credentials: dict[str, Any], listener: Recorder
) -> None:
    with pytest.raises(InputError) as refused:
        registry.parse(kind, config_of(kind, listener.url), credentials, ACME)
    assert answer_for(refused.value).status == 422
    message = str(refused.value)
    assert "endpoint_url" in message and "SPILLWAY_ALLOWED_ENDPOINTS" in message
    # In the model itself, whoever builds it.
    module = registry.kind_module(kind)
    with pytest.raises(ValidationError, match="SPILLWAY_ALLOWED_ENDPOINTS"):
        module.Config.model_validate(config_of(kind, listener.url))
    assert listener.connections == 0


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://s3.eu-west-1.amazonaws.com", True),
        ("https://kinesis.cn-north-1.amazonaws.com.cn", True),
        ("https://bucket.s3.dualstack.us-east-1.amazonaws.com/", True),
        ("http://s3.eu-west-1.amazonaws.com", False),  # AWS, but not https
        ("https://s3.amazonaws.com.attacker.example", False),
        ("http://169.254.169.254", False),  # the cloud metadata address
        ("http://localhost:9000", False),
        ("", True),  # empty means AWS's own endpoint
    ],
)
def test_aws_domains_over_https_need_no_listing(url: str, allowed: bool) -> None:
    if allowed:
        parsed = registry.parse("s3", config_of("s3", url), KEY, ACME)
        assert parsed.config.endpoint_url == (url or None)  # type: ignore[attr-defined]
    else:
        with pytest.raises(InputError, match="not an allowed endpoint"):
            registry.parse("s3", config_of("s3", url), KEY, ACME)


def test_a_listed_endpoint_is_accepted(listener: Recorder) -> None:
    allow_endpoint(listener.url)
    for kind in ("s3", "kinesis", "firehose"):
        registry.parse(kind, config_of(kind, listener.url), KEY, ACME)
    assert listener.connections == 0  # parsing connects to nothing


def test_a_stored_destination_no_longer_allowed_fails_without_connecting(
    listener: Recorder,
) -> None:
    """A destination stored before the operator's list existed (or changed) still loads, but
    every call refuses with a terminal error that says what to do, before any connection."""
    for kind in ("s3", "kinesis", "firehose"):
        parsed = registry.parse(kind, config_of(kind, listener.url), KEY, stored=True)
        store = registry.build(parsed, ACME)
        try:
            checks = store.validate(Needs(test_record=True))
            assert checks[0].name == "credentials"
            assert checks[0].status is CheckStatus.FAILED
            assert "SPILLWAY_ALLOWED_ENDPOINTS" in checks[0].message
            assert all(c.status is CheckStatus.SKIPPED for c in checks[1:])
            with pytest.raises(DestinationError, match="SPILLWAY_ALLOWED_ENDPOINTS"):
                if isinstance(store, ObjectStore):
                    store.put_object("spillway/x.json", b"{}")
                else:
                    assert isinstance(store, RecordStream)
                    store.put_records([StreamRecord(b"{}", "uid")])
        finally:
            store.close()
    assert listener.connections == 0


# --- 2. Spillway's own identity never goes to a custom endpoint --------------------------------


@pytest.fixture
def role_world(
    s3_world: S3World, monkeypatch: pytest.MonkeyPatch
) -> tuple[S3World, AssumeRole, AccessKey]:
    """A role in moto that trusts anyone with the External ID; Spillway's own identity is a
    moto user allowed to assume it, and the operator's STS (AWS_ENDPOINT_URL_STS) is moto."""
    iam: Any = s3_world.moto.client("iam")
    trust = policy(
        {
            "Effect": "Allow",
            "Principal": {"AWS": "*"},
            "Action": "sts:AssumeRole",
            "Condition": {"StringEquals": {"sts:ExternalId": EXTERNAL_ID}},
        }
    )
    name = "SpillwayExport-" + uuid.uuid4().hex[:8]
    role = iam.create_role(RoleName=name, AssumeRolePolicyDocument=trust)["Role"]
    iam.put_role_policy(
        RoleName=name,
        PolicyName="all",
        PolicyDocument=policy(allow(["s3:*", "kinesis:*", "firehose:*"], "*")),
    )
    service = s3_world.user(allow("sts:AssumeRole", role["Arn"]))
    as_operator(monkeypatch, s3_world.moto, service)
    return s3_world, AssumeRole(role_arn=role["Arn"]), service


@pytest.mark.parametrize("kind", ["s3", "kinesis", "firehose"])
def test_a_role_with_a_custom_endpoint_never_sends_the_service_identity_there(
    kind: str, role_world: tuple[S3World, AssumeRole, AccessKey]
) -> None:
    world, role, service = role_world
    with recorder(status=403, body=DENIED, content_type="application/xml") as custom:
        allow_endpoint(custom.url)  # the operator lists it: the project may use it
        parsed = registry.parse(
            kind,
            config_of(kind, custom.url, world.bucket),
            {"mode": "role", "role_arn": role.role_arn},
            ACME,
        )
        store = registry.build(parsed, ACME)
        try:
            checks = {c.name: c for c in store.validate(Needs())}
        finally:
            store.close()
        seen = custom.seen()
    # Nothing of Spillway's own identity reached the custom endpoint: no STS call, not its key,
    # not its secret.
    assert service.access_key_id not in seen
    assert service.secret_access_key.get_secret_value() not in seen
    assert "/sts/aws4_request" not in seen
    assert "AssumeRole" not in seen and "GetCallerIdentity" not in seen
    # The role was assumed through the operator's STS (moto), as Spillway's own identity...
    assert checks["credentials"].status is CheckStatus.PASSED, checks["credentials"]
    assert checks["role"].status is CheckStatus.PASSED, checks["role"]
    assert checks["external_id"].status is CheckStatus.SKIPPED  # moto's STS is not AWS
    # ... and the custom endpoint got the data-plane calls, signed with the role's temporary key.
    assert custom.requests, "the destination's endpoint was never called"
    assert "Credential=ASIA" in seen


# --- 3. service_identity: off unless the operator turns it on, limited per project -------------


@pytest.mark.parametrize("kind", ["s3", "kinesis", "firehose"])
def test_service_identity_is_off_unless_the_operator_turns_it_on(kind: str) -> None:
    service_identity.configure(parse_grants(Settings().service_identity))  # the default: ""
    with pytest.raises(InputError) as refused:
        registry.parse(kind, config_of(kind, None), SERVICE, ACME)
    assert answer_for(refused.value).status == 422
    assert "service_identity is turned off on this server" in str(refused.value)
    assert "SPILLWAY_SERVICE_IDENTITY" in str(refused.value)


def test_service_identity_reaches_only_the_buckets_granted_to_the_project() -> None:
    grant(f"acme:acme-exports|acme-events,{BETA.app_id}:beta-exports")
    registry.parse("s3", config_of("s3", None, "acme-exports"), SERVICE, ACME)
    registry.parse("kinesis", config_of("kinesis", None, "acme-events"), SERVICE, ACME)
    registry.parse("s3", config_of("s3", None, "beta-exports"), SERVICE, BETA)  # by its id
    for tenant, kind, target in [
        (ACME, "s3", "beta-exports"),  # another project's bucket
        (BETA, "s3", "acme-exports"),
        (ACME, "s3", "unlisted-bucket"),
        (ACME, "firehose", "beta-exports"),
        (Tenant("c" * 32, "gamma", "x"), "s3", "acme-exports"),  # a project not named at all
    ]:
        with pytest.raises(InputError, match=f"may not reach .*{target}") as refused:
            registry.parse(kind, config_of(kind, None, target), SERVICE, tenant)
        assert answer_for(refused.value).status == 422
    # A Kinesis stream by ARN could be another account's: only an ARN listed as such counts.
    arn = "arn:aws:kinesis:us-east-1:111122223333:stream/acme-events"
    with pytest.raises(InputError, match="may not reach"):
        registry.parse("kinesis", config_of("kinesis", None, arn), SERVICE, ACME)
    # Access keys and roles are the project's own: the grants do not apply to them.
    registry.parse("s3", config_of("s3", None, "beta-exports"), KEY, ACME)


def test_service_identity_never_takes_a_custom_endpoint(listener: Recorder) -> None:
    grant("acme:acme-exports")
    allow_endpoint(listener.url)  # even one the operator lists
    with pytest.raises(InputError, match="cannot be used with a custom endpoint_url"):
        registry.parse("s3", config_of("s3", listener.url, "acme-exports"), SERVICE, ACME)
    assert listener.connections == 0


@pytest.mark.parametrize(
    "text",
    [
        "acme:shared,beta:shared",  # one bucket, two projects
        "acme:a|shared, beta:b|shared",
        "acme:arn:aws:kinesis:us-east-1:111122223333:stream/events,beta:events",
        "acme",  # no names
        "acme:",
        ":bucket",
    ],
)
def test_a_bad_service_identity_setting_stops_the_server(
    text: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SPILLWAY_SERVICE_IDENTITY", text)
    with pytest.raises(ValidationError, match="SPILLWAY_SERVICE_IDENTITY"):
        Settings()


def test_one_project_may_be_granted_several_names_and_listed_twice() -> None:
    grants = parse_grants("acme:a|b, acme:c ,beta:d")
    assert grants.names_for(ACME) == {"a", "b", "c"}
    assert grants.names_for(BETA) == {"d"}


def test_service_identity_writes_only_where_granted_and_stops_when_revoked(
    s3_world: S3World, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Through the registry, as the API and the engine use it: the operator's identity writes
    the granted bucket (S3 and STS on moto through AWS_ENDPOINT_URL_*); once the operator turns
    the mode off, the destination already stored stops with a terminal error, writing nothing."""
    as_operator(monkeypatch, s3_world.moto, s3_world.full_user(), "s3", "sts")
    grant(f"acme:{s3_world.bucket}")
    config = {"bucket": s3_world.bucket, "folder": "exports", "sse": "none"}
    parsed = registry.parse("s3", config, SERVICE, ACME)
    store = registry.build(parsed, ACME)
    checks = store.validate(Needs())
    assert all(c.status is not CheckStatus.FAILED for c in checks), [c.as_dict() for c in checks]
    assert isinstance(store, S3Store)
    store.put_object("exports_events/granted.json", b"{}\n")
    assert s3_world.raw_read("exports_events/granted.json") == b"{}\n"

    grant("beta:another-bucket")  # the operator takes it away from acme
    stored = registry.parse("s3", config, SERVICE, stored=True)
    revoked = registry.build(stored, ACME)
    assert isinstance(revoked, S3Store)
    with pytest.raises(DestinationError, match="may not reach bucket"):
        revoked.put_object("exports_events/after.json", b"{}\n")
    assert revoked.validate(Needs())[0].status is CheckStatus.FAILED
    service_identity.configure(parse_grants(""))  # and then turns the mode off
    off = registry.build(stored, ACME)
    assert isinstance(off, S3Store)
    with pytest.raises(DestinationError, match="turned off"):
        off.put_object("exports_events/after.json", b"{}\n")
    assert s3_world.raw_read("exports_events/after.json") is None


# --- 4. no remote answer echoed ----------------------------------------------------------------


@pytest.mark.parametrize("kind", ["s3", "kinesis", "firehose"])
@pytest.mark.parametrize("status", [200, 403, 502])
def test_an_answer_that_is_not_aws_is_named_not_echoed(kind: str, status: int) -> None:
    with recorder(status=status) as page:
        allow_endpoint(page.url)
        parsed = registry.parse(kind, config_of(kind, page.url), KEY, ACME)
        store = registry.build(parsed, ACME)
        try:
            checks = store.validate(Needs(test_record=True))
            failed = [c for c in checks if c.status is CheckStatus.FAILED]
            with pytest.raises(SpillwayError) as writing:
                if isinstance(store, ObjectStore):
                    store.put_object("spillway/x.json", b"{}")
                else:
                    assert isinstance(store, RecordStream)
                    store.put_records([StreamRecord(b"{}", "uid")])
        finally:
            store.close()
    assert page.requests
    said = " ".join(c.message for c in checks) + " " + str(writing.value)
    assert MARKER not in said and "<html>" not in said
    assert failed, [c.as_dict() for c in checks]
    assert f"not an AWS response (HTTP status {status})" in said or (
        # S3 turns a 200 it cannot read into a 500 (and retries it) before Spillway sees it.
        kind == "s3" and status == 200 and "not an AWS response (HTTP status 500)" in said
    ), said


def _error_answer(status: int, body: bytes, headers: dict[str, str]) -> dict[str, Any]:
    return {"status_code": status, "headers": headers, "body": body}


def test_error_messages_are_shown_only_from_endpoints_the_operator_stands_behind() -> None:
    """AWS's code is kept everywhere; its message only from AWS as botocore resolves it or an
    operator-listed origin (a custom https endpoint on an AWS domain can front anything)."""
    from spillway.destinations.aws.client import _PARSERS, explain

    model = botocore.session.get_session().get_service_model("sts")
    shape = model.operation_model("GetCallerIdentity").output_shape
    body = (
        b"<ErrorResponse><Error><Type>Sender</Type><Code>InvalidClientTokenId</Code>"
        b"<Message>token " + MARKER.encode() + b"</Message></Error></ErrorResponse>"
    )
    answer = _error_answer(403, body, {})
    trusted = _PARSERS[True].create_parser("query").parse(dict(answer), shape)
    untrusted = _PARSERS[False].create_parser("query").parse(dict(answer), shape)
    assert trusted["Error"]["Code"] == untrusted["Error"]["Code"] == "InvalidClientTokenId"
    assert MARKER in trusted["Error"]["Message"]
    assert untrusted["Error"]["Message"] == ""
    # A "code" that is not one (here, a page) is replaced by the HTTP status.
    kinesis = botocore.session.get_session().get_service_model("kinesis")
    shape = kinesis.operation_model("DescribeStreamSummary").output_shape
    odd = _error_answer(400, b'{"__type": "<h1>' + MARKER.encode() + b'</h1>"}', {})
    parsed = _PARSERS[True].create_parser("json").parse(odd, shape)
    assert parsed["Error"]["Code"] == "400"
    error = botocore.exceptions.ClientError(parsed, "DescribeStreamSummary")
    assert MARKER not in explain(error, "Kinesis")


def test_not_an_aws_response_is_said_plainly() -> None:
    from spillway.destinations.aws.client import NotAwsResponse, explain

    message = explain(NotAwsResponse(status=418), "S3")
    assert message == (
        "the S3 endpoint answered with something that is not an AWS response (HTTP status 418): "
        "check endpoint_url"
    )


def test_the_config_models_still_take_moto_once_listed(moto: Moto) -> None:
    # The session's moto fixture listed itself when it started.
    assert netpolicy.current().listed(netpolicy.origin_of(moto.endpoint))
    assert S3Config(bucket="spw-b", endpoint_url=moto.endpoint).endpoint_url == moto.endpoint
    assert KinesisConfig(stream="s", endpoint_url=moto.endpoint).endpoint_url == moto.endpoint
    assert S3Config(bucket="spw-b", endpoint_url=" ").endpoint_url is None  # empty: AWS's own


def test_an_aws_name_that_resolves_inside_the_network_needs_listing(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """A VPC endpoint or internal load balancer has an AWS name but a private address."""
    import socket

    def resolve(host: str, port: int, *args: Any, **kwargs: Any) -> list[Any]:
        address = "10.0.3.7" if "vpce" in host else "52.95.110.1"
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", resolve)
    private = "https://vpce-0a1b2c3d-x.s3.us-east-1.vpce.amazonaws.com"
    with pytest.raises(InputError, match=r"non-public address \(10\.0\.3\.7\)"):
        registry.parse("s3", config_of("s3", private), KEY, ACME)
    registry.parse("s3", config_of("s3", "https://s3.us-east-1.amazonaws.com"), KEY, ACME)
    allow_endpoint(private)  # the operator may list it
    registry.parse("s3", config_of("s3", private), KEY, ACME)


def test_an_export_whose_service_identity_was_revoked_stops_with_a_terminal_error(
    s3_world: S3World, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Stored while the operator granted the bucket; the operator then turns the mode off: the
    export's next run fails (terminal, the export is failing, saying why) and writes nothing."""
    as_operator(monkeypatch, s3_world.moto, s3_world.full_user(), "s3", "sts")
    engine = create_engine(f"sqlite:///{tmp_path / 'spillway.db'}")
    migrate(engine)
    try:
        box = SecretBox(b"k" * 48)
        project = create_project(engine, "acme-" + uuid.uuid4().hex[:6])
        grant(f"{project.app_id}:{s3_world.bucket}")
        actor = Actor("test", project.id)
        body = {
            "name": "warehouse",
            "kind": "s3",
            "config": {"bucket": s3_world.bucket, "folder": "spillway", "sse": "none"},
            "credentials": SERVICE,
        }
        row, checks = destination_service.create(engine, box, actor, body)
        assert all(c.status is not CheckStatus.FAILED for c in checks), checks
        setup = Setup(engine, box, tmp_path, project.id, actor, row, Clock(T0 + 60))
        export = setup.export()
        setup.ingest(5)
        service_identity.configure(parse_grants(""))  # the operator turns the mode off
        export_service.run_now(engine, actor, export.id, now=int(setup.clock.now * 1000))
        assert setup.scheduler().tick() == {"runs": 0, "failed": 1}
        shown = views.export(engine, export_service.get(engine, project.id, export.id))
        assert shown["status"] == "failing"
        assert "service_identity is turned off on this server" in shown["status_reason"]
        s3: Any = s3_world.moto.client("s3")
        written = s3.list_objects_v2(Bucket=s3_world.bucket, Prefix="spillway_events/")
        assert written.get("KeyCount", 0) == 0
    finally:
        engine.dispose()
