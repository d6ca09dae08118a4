"""The API's own description: ``/openapi.json``, Swagger UI at ``/docs`` and ReDoc at ``/redoc``.

Both pages are served with their scripts and styles from this server (the ``fastapi-offline``
package ships them), so they work with no internet access: nothing is fetched from a CDN.

The OpenAPI document is FastAPI's, completed here with what every ``/api/v1`` route has in
common and FastAPI cannot see, because the guard middleware (``api/guard.py``) does it before
a route runs: the bearer key (an Authorize button in Swagger UI) and the error answers of the
guard and of the exception handlers (``api/errors.py``), all in the one ``Error`` shape. Each
router adds the answers only its routes give (``responses=error_answers(404, 409)``).
"""

from __future__ import annotations

from importlib.resources import files
from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import (
    get_redoc_html,
    get_swagger_ui_html,
    get_swagger_ui_oauth2_redirect_html,
)
from fastapi.openapi.utils import get_openapi
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel
from starlette.responses import HTMLResponse

from spillway.api.errors import ErrorBody

API_PREFIX = "/api/v1"
ASSETS = "/docs/assets"
SCHEME = "bearerKey"
ERROR_REF = "#/components/schemas/Error"

# What each error status means on this API, for the documented answers.
MEANINGS: dict[int, str] = {
    400: "The request could not be read (bad JSON, gzip or Content-Length, or input the "
    "service refuses).",
    401: "No key, or a key that is unknown, revoked or malformed.",
    403: "The key's scope does not allow this call.",
    404: "No such object in the key's project.",
    409: "The call conflicts with the object's state (a name in use, credentials that can "
    "no longer be read, a call that does not apply to this kind).",
    413: "The body is over this call's limit (named in the message).",
    415: "A Content-Type or Content-Encoding the call does not take.",
    422: "A field is missing or invalid; `details` names each one.",
    429: "Too many validations (or unfinished jobs) at once for this project; retry after "
    "`Retry-After` seconds.",
    503: "The database (or the validation pool) did not answer; retry after `Retry-After` seconds.",
}
_RETRY_AFTER = {"Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer"}}}
_HEADERS: dict[int, dict[str, Any]] = {
    401: {"WWW-Authenticate": {"description": "`Bearer`", "schema": {"type": "string"}}},
    429: _RETRY_AFTER,
    503: _RETRY_AFTER,
}
# The pages may load nothing from another host: ReDoc's footer, for one, shows a logo from
# its vendor's CDN; with this policy the browser never asks for it (it works offline alike).
# Inline scripts and styles: FastAPI's page starts Swagger UI inline, both style inline.
PAGE_POLICY = (
    "default-src 'self'; script-src 'self' 'unsafe-inline'; style-src 'self' 'unsafe-inline'; "
    "img-src 'self' data:; font-src 'self' data:; worker-src 'self' blob:; connect-src 'self'"
)
_SUCCESS = {200: "Success", 201: "Created", 202: "Accepted: the work is queued"}
# Every /api/v1 call may get these: a URL holding NUL is refused (api/urltext.py), the guard
# checks the key, the scope dependency the key's scope, and the database may be away.
COMMON = (400, 401, 403, 503)


def error_answers(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for the error answers a route gives beyond the common ones."""
    return {status: _error_response(status) for status in statuses}


def documented(
    model: type[BaseModel], *errors: int, status: int = 200
) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: the shape of its success answer (``api/schemas.py``; for the
    document only, the answer is never checked against it) and its own error answers."""
    success = {"model": model, "description": _SUCCESS.get(status, "Success")}
    return {status: success, **error_answers(*errors)}


def _error_response(status: int) -> dict[str, Any]:
    response: dict[str, Any] = {
        "description": MEANINGS.get(status, "An error."),
        "content": {"application/json": {"schema": {"$ref": ERROR_REF}}},
    }
    if status in _HEADERS:
        response["headers"] = _HEADERS[status]
    return response


def describe(app: FastAPI) -> dict[str, Any]:
    """The OpenAPI document: FastAPI's, with the key and the error answers of ``/api/v1``."""
    if app.openapi_schema is not None:
        return app.openapi_schema
    schema = get_openapi(
        title=app.title,
        version=app.version,
        description=app.description,
        routes=app.routes,
        tags=app.openapi_tags,
    )
    components = schema.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    # Our 422 is an Error with `details`, not FastAPI's {"detail": [...]}.
    schemas.pop("HTTPValidationError", None)
    schemas.pop("ValidationError", None)
    schemas["Error"] = ErrorBody.model_json_schema(ref_template="#/components/schemas/{model}")
    components["securitySchemes"] = {
        SCHEME: {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "<key_id>.<secret>",
            "description": "An integration key, as `spillway admin create-key` prints it: "
            "`Authorization: Bearer <key_id>.<secret>`.",
        }
    }
    for path, operations in schema.get("paths", {}).items():
        if path.startswith(API_PREFIX + "/"):
            for operation in operations.values():
                _complete(operation)
    app.openapi_schema = schema
    return schema


def _complete(operation: dict[str, Any]) -> None:
    """Add the key and the common error answers to one ``/api/v1`` operation."""
    operation["security"] = [{SCHEME: []}]
    responses: dict[str, Any] = operation.setdefault("responses", {})
    common = (*COMMON, 413) if "requestBody" in operation else COMMON
    for code in common:
        responses.setdefault(str(code), _error_response(code))
    for key, response in responses.items():
        if key.startswith(("4", "5")):
            # FastAPI's own 422 points at HTTPValidationError: ours is an Error. A route's
            # own description of the status stays.
            described = response.get("description")
            response.update(_error_response(int(key)))
            if described and described != "Validation Error":
                response["description"] = described
        else:
            for content in response.get("content", {}).values():
                _documented_only(content.get("schema", {}))


def _documented_only(schema: dict[str, Any]) -> None:
    """A success schema from ``documented`` is merged into the one FastAPI made from the return
    annotation (a free-form object): keep the documented one alone."""
    if "$ref" in schema:
        for key in [key for key in schema if key != "$ref"]:
            del schema[key]


def _local_only(page: HTMLResponse) -> HTMLResponse:
    page.headers["Content-Security-Policy"] = PAGE_POLICY
    return page


def install(app: FastAPI) -> None:
    """Serve ``/docs`` and ``/redoc`` from local assets and the completed ``/openapi.json``."""
    assets = files("fastapi_offline") / "static"
    app.mount(ASSETS, StaticFiles(directory=str(assets)), name="docs-assets")
    openapi_url = app.openapi_url or "/openapi.json"
    redirect_url = "/docs/oauth2-redirect"
    parameters = {
        # Keep the key across reloads of the page, and never ask validator.swagger.io.
        "persistAuthorization": True,
        "validatorUrl": None,
        "displayRequestDuration": True,
    }

    def root(request: Request) -> str:
        return str(request.scope.get("root_path", ""))

    @app.get("/docs", include_in_schema=False)
    async def swagger_ui(request: Request) -> HTMLResponse:
        base = root(request)
        return _local_only(
            get_swagger_ui_html(
                openapi_url=base + openapi_url,
                title=f"{app.title} API",
                oauth2_redirect_url=base + redirect_url,
                swagger_js_url=f"{base}{ASSETS}/swagger-ui-bundle.js",
                swagger_css_url=f"{base}{ASSETS}/swagger-ui.css",
                swagger_favicon_url=f"{base}{ASSETS}/favicon.png",
                swagger_ui_parameters=parameters,
            )
        )

    @app.get(redirect_url, include_in_schema=False)
    async def swagger_ui_redirect() -> HTMLResponse:
        return get_swagger_ui_oauth2_redirect_html()

    @app.get("/redoc", include_in_schema=False)
    async def redoc(request: Request) -> HTMLResponse:
        base = root(request)
        return _local_only(
            get_redoc_html(
                openapi_url=base + openapi_url,
                title=f"{app.title} API",
                redoc_js_url=f"{base}{ASSETS}/redoc.standalone.js",
                redoc_favicon_url=f"{base}{ASSETS}/favicon.png",
                with_google_fonts=False,
            )
        )

    def openapi() -> dict[str, Any]:
        return describe(app)

    app.openapi = openapi  # type: ignore[method-assign]
