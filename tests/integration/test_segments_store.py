"""Segments on SQLite and PostgreSQL: paging the endpoints a filter selects, names, projects."""

from __future__ import annotations

import pytest
from sqlalchemy.engine import Engine

from spillway.api.models import EndpointIn
from spillway.errors import Conflict, NotFound
from spillway.filters import EndpointFilter
from spillway.model import Actor
from spillway.services import profiles
from spillway.services import segments as service
from spillway.services.projects import create_project


def seed(engine: Engine, project_id: int, count: int) -> list[dict[str, object]]:
    """``count`` endpoints: every third SMS, every fifth with tier gold; returns them as sent."""
    sent = []
    for i in range(count):
        body = {
            "user_id": f"u{i % 7}",
            "channel_type": "SMS" if i % 3 == 0 else "EMAIL",
            "attributes": {"tier": ["gold" if i % 5 == 0 else "silver"]},
        }
        sent.append({"endpoint_id": f"ep-{i:04d}", **body})
    items = [(str(e["endpoint_id"]), EndpointIn.model_validate(e)) for e in sent]
    for start in range(0, len(items), 100):
        profiles.upsert(engine, project_id, items[start : start + 100])
    return sent


def test_pages_hold_each_selected_endpoint_once(engine: Engine) -> None:
    project = create_project(engine, "p").id
    other = create_project(engine, "q").id
    sent = seed(engine, project, 95)
    seed(engine, other, 10)
    wanted = EndpointFilter(channel_type=("EMAIL",), attributes={"tier": ("gold",)})
    expected = [
        e["endpoint_id"]
        for e in sent
        if e["channel_type"] == "EMAIL" and e["attributes"] == {"tier": ["gold"]}
    ]
    # Pages of 4 rows: most of them hold no gold one, so paging must go on past empty pages.
    pages = list(service.matching(engine, project, wanted, page_size=4))
    got = [row.endpoint_id for page in pages for row in page]
    assert got == expected
    assert any(page == [] for page in pages)
    assert service.size(engine, project, wanted) == len(expected)
    sms = EndpointFilter(channel_type=("SMS",))
    assert service.size(engine, project, sms) == sum(e["channel_type"] == "SMS" for e in sent)
    assert service.size(engine, project, EndpointFilter()) == 95


def test_paging_resumes_after_a_given_id(engine: Engine) -> None:
    project = create_project(engine, "p").id
    seed(engine, project, 12)
    rest = list(service.matching(engine, project, EndpointFilter(), after="ep-0009", page_size=5))
    assert [row.endpoint_id for page in rest for row in page] == ["ep-0010", "ep-0011"]


def test_names_are_unique_among_live_segments_of_a_project(engine: Engine) -> None:
    first, second = create_project(engine, "a").id, create_project(engine, "b").id
    me, them = Actor("test", first), Actor("test", second)
    segment = service.create(engine, me, "gold", EndpointFilter(user_ids=("u1",)))
    with pytest.raises(Conflict):
        service.create(engine, me, "gold", EndpointFilter())
    service.create(engine, them, "gold", EndpointFilter())  # another project's name space
    other = service.create(engine, me, "silver", EndpointFilter())
    with pytest.raises(Conflict):
        service.update(engine, me, other.id, name="gold")
    with pytest.raises(NotFound):
        service.get(engine, second, segment.id)
    with pytest.raises(NotFound):
        service.delete(engine, them, segment.id)
    service.delete(engine, me, segment.id)
    with pytest.raises(NotFound):
        service.get(engine, first, segment.id)
    again = service.create(engine, me, "gold", EndpointFilter())  # the name is free again
    assert service.get(engine, first, again.id).filter == EndpointFilter()
    assert {s.name for s in service.list_all(engine, first)} == {"silver", "gold"}
