"""Every domain error gets its status and ``error`` code from the one mapping in api/errors.py."""

from __future__ import annotations

import pytest

from spillway import errors
from spillway.api.errors import answer_for
from spillway.engine.targets import CredentialsUnreadable
from spillway.ingest import BadGzip, BadJson, EmptyBatch, UnknownEncoding, UnknownMediaType
from spillway.services.destinations import ValidationFailed
from spillway.services.exports import BadExportSettings

ANSWERS: list[tuple[errors.InputError, int, str]] = [
    (errors.Malformed("unknown feature"), 400, "bad_request"),
    (errors.Invalid("config.path", "outside the data directory"), 422, "invalid_request"),
    (errors.Invalid(None, "an endpoint id must not contain NUL"), 422, "invalid_request"),
    (errors.Unsupported("not read"), 415, "unsupported_media_type"),
    (errors.NotFound("no export"), 404, "not_found"),
    (errors.Conflict("taken"), 409, "conflict"),
    (errors.NotApplicable("a stream has nothing to run"), 409, "not_applicable"),
    (errors.TooLarge("over the limit"), 413, "too_large"),
    (errors.Unauthorized("no key"), 401, "unauthorized"),
    (errors.Forbidden("read-only key"), 403, "forbidden"),
    (errors.Busy("busy", retry_after=5), 503, "validation_busy"),
    (errors.RateLimited("two running", retry_after=5), 429, "too_many_validations"),
    (ValidationFailed("checks failed", []), 422, "validation_failed"),
    (CredentialsUnreadable("d1"), 409, "credentials_unreadable"),
    (BadExportSettings("webhook_url", "private address"), 422, "invalid_request"),
    (BadGzip("truncated"), 400, "bad_gzip"),
    (BadJson("not JSON"), 400, "bad_json"),
    (EmptyBatch("no events"), 400, "empty_batch"),
    (UnknownEncoding("br"), 415, "unsupported_encoding"),
    (UnknownMediaType("text/plain"), 415, "unsupported_media_type"),
]


@pytest.mark.parametrize(("error", "status", "code"), ANSWERS, ids=lambda v: type(v).__name__)
def test_each_error_maps_to_its_status_and_code(
    error: errors.InputError, status: int, code: str
) -> None:
    answer = answer_for(error)
    assert (answer.status, answer.code) == (status, code)


def test_every_domain_error_is_in_the_table() -> None:
    domain = {
        value
        for value in vars(errors).values()
        if isinstance(value, type) and issubclass(value, errors.InputError)
    }
    assert domain - {errors.InputError} <= {type(error) for error, _, _ in ANSWERS}


def test_retry_after_and_www_authenticate_headers() -> None:
    assert answer_for(errors.Busy("busy", retry_after=0.2)).headers == {"Retry-After": "1"}
    assert answer_for(errors.RateLimited("x", retry_after=30.4)).headers == {"Retry-After": "30"}
    assert answer_for(errors.Unauthorized("no key")).headers == {"WWW-Authenticate": "Bearer"}
    assert answer_for(errors.Conflict("taken")).headers == {}


def test_invalid_names_its_field() -> None:
    error = errors.Invalid("config.path", "outside the data directory")
    assert str(error) == "config.path: outside the data directory"
    assert (error.field, error.reason) == ("config.path", "outside the data directory")


def test_a_full_job_queue_is_named_as_such() -> None:
    from spillway.services.jobs import TooManyJobs

    answer = answer_for(TooManyJobs("5 jobs of this project have not finished", retry_after=30))
    assert (answer.status, answer.code, answer.headers["Retry-After"]) == (
        429,
        "too_many_jobs",
        "30",
    )
