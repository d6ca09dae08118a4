"""A JSON response rendered with orjson; never a 500 because of what the database holds."""

from __future__ import annotations

from typing import Any

import orjson
from starlette.responses import JSONResponse

from spillway.text import printable


class JSON(JSONResponse):
    """``application/json`` via orjson (a JSONResponse, so that the OpenAPI schema describes
    its answers as JSON rather than as a string)."""

    media_type = "application/json"

    def render(self, content: Any) -> bytes:
        """Serialise the content.

        Rows stored before input was checked at the boundary may hold lone surrogates (or
        nest too deep): they are shown with U+FFFD (or a placeholder) instead of failing.
        """
        try:
            return orjson.dumps(content)
        except orjson.JSONEncodeError:
            return orjson.dumps(printable(content))
