"""The optional webhook an export calls once per state change (active ↔ failing)."""

from __future__ import annotations

import logging
from typing import Any

import httpx

log = logging.getLogger(__name__)


def notify(export: dict[str, Any], status: str, reason: str | None) -> None:
    """POST the new state to the export's webhook_url, if it has one. Never raises."""
    url = (export.get("settings") or {}).get("webhook_url")
    if not url:
        return
    body = {
        "export_id": export["id"],
        "export_name": export["name"],
        "status": status,
        "reason": reason,
    }
    try:
        response = httpx.post(url, json=body, timeout=10)
        response.raise_for_status()
    except httpx.HTTPError as exc:
        log.warning("webhook for export %s failed: %s", export["id"], exc.__class__.__name__)
