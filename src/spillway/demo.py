"""Synthetic, realistic events for trying Spillway out and for benchmarks."""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from typing import Any

_USER_EVENTS = [
    ("App Opened", "APP_OPENED"),
    ("Viewed Product", "VIEW_PRODUCT"),
    ("Added To Cart", "ADD_TO_CART"),
    ("Purchase", "PURCHASE"),
    ("Search", "SEARCH"),
    ("Viewed Radar", "VIEW_RADAR"),
    ("Signed Up", "SIGN_UP"),
    ("Shared", "SHARE"),
]
_CAMPAIGN_EVENTS = [
    ("Email Sent", "MOE_EMAIL_SENT", "EMAIL"),
    ("Email Opened", "MOE_EMAIL_OPEN", "EMAIL"),
    ("Notification Received", "NOTIFICATION_RECEIVED", "PUSH"),
    ("Notification Clicked", "NOTIFICATION_CLICKED", "PUSH"),
    ("SMS Delivered", "SMS_DELIVERED", "SMS"),
]
_CITIES = ["Tokyo", "Paris", "Mumbai", "São Paulo", "Berlin", "Austin", "Lagos", "Seoul"]
_PLATFORMS = [("iOS", "iPhone15,2", "17.4"), ("ANDROID", "Pixel 8", "14"), ("web", "Chrome", "131")]
_PRODUCTS = ["sku-1001", "sku-1002", "sku-2040", "sku-3311", "sku-7777"]


def synthetic_events(
    count: int, *, users: int = 1_000, seed: int | None = None, start_time: int = 1_763_856_000
) -> Iterator[dict[str, Any]]:
    """Yield ``count`` events from ``users`` users, about one in five a campaign event."""
    rng = random.Random(seed)
    for i in range(count):
        user = rng.randrange(users)
        platform, model, os_version = _PLATFORMS[user % len(_PLATFORMS)]
        event: dict[str, Any] = {
            "event_uuid": str(uuid.UUID(int=rng.getrandbits(128), version=4)),
            "uid": f"user-{user:06d}",
            "event_time": start_time + i // 10,
            "event_source": "DEMO",
            "user_attributes": {
                "first_seen": f"2026-0{1 + user % 9}-1{user % 10}",
                "city": _CITIES[user % len(_CITIES)],
                "plan": "pro" if user % 7 == 0 else "free",
            },
            "device_attributes": {
                "device_id": f"dev-{user:06d}",
                "platform": platform,
                "model": model,
                "os_version": os_version,
            },
        }
        if rng.random() < 0.2:
            name, code, channel = rng.choice(_CAMPAIGN_EVENTS)
            campaign = rng.randrange(40)
            event.update(
                event_type="CAMPAIGN_EVENT",
                event_name=name,
                event_code=code,
                event_attributes={
                    "campaign_id": f"cmp-{campaign:04d}",
                    "campaign_name": f"Campaign {campaign}",
                    "campaign_channel": channel,
                    "campaign_type": "GENERAL",
                    "moe_campaign_tags": ["demo", channel.lower()],
                },
            )
            if channel == "EMAIL":
                event["email_id"] = f"user{user}@example.com"
        else:
            name, code = rng.choice(_USER_EVENTS)
            event.update(
                event_type="USER_ACTION_EVENT",
                event_name=name,
                event_code=code,
                event_attributes={
                    "product_id": rng.choice(_PRODUCTS),
                    "price": round(rng.uniform(1, 200), 2),
                    "screen": rng.choice(["home", "search", "detail", "cart"]),
                },
            )
        yield event
