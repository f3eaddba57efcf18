"""Listing runs: every filter, newest-first order, cursor pagination, argument checks, tenants."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from keel.errors import UsageError
from keel.store import RunStore
from keel.store.cursor import encode_cursor
from keel.store.records import RunRecord
from tests.store.factories import T0, make_run, make_span, seed


def at(minutes: int) -> datetime:
    return T0 + timedelta(minutes=minutes)


def sample_runs() -> list[RunRecord]:
    return [
        make_run("r1", agent="inbox", started_at=at(1), user_id="ann", tenant_id="acme", tags=("prod",)),
        make_run(
            "r2",
            agent="inbox",
            started_at=at(2),
            status="failed",
            error_category="tool_error",
            user_id="bob",
            tenant_id="acme",
            session_id="s1",
            tags=("prod", "beta"),
        ),
        make_run("r3", agent="triage", started_at=at(3), trigger="api", tenant_id="globex", session_id="s1"),
        make_run(
            "r4",
            agent="triage",
            started_at=at(4),
            status="timed_out",
            error_category="timed_out",
            user_id="ann",
            tags=("beta",),
        ),
        make_run("r5", agent="inbox", started_at=at(5), trigger="api", user_id="ann", tenant_id="globex"),
    ]


async def ids(store: RunStore, **filters: Any) -> list[str]:
    page = await store.list_runs(**filters)
    return [run.id for run in page.runs]


@pytest.mark.parametrize(
    ("filters", "expected"),
    [
        ({}, ["r5", "r4", "r3", "r2", "r1"]),
        ({"agent": "inbox"}, ["r5", "r2", "r1"]),
        ({"status": "failed"}, ["r2"]),
        ({"error_category": "timed_out"}, ["r4"]),
        ({"since": at(2)}, ["r5", "r4", "r3", "r2"]),
        ({"until": at(2)}, ["r1"]),
        ({"since": at(2), "until": at(4)}, ["r3", "r2"]),
        ({"tag": "prod"}, ["r2", "r1"]),
        ({"tag": "beta"}, ["r4", "r2"]),
        ({"tag": "nope"}, []),
        ({"user_id": "ann"}, ["r5", "r4", "r1"]),
        ({"tenant_id": "acme"}, ["r2", "r1"]),
        ({"session_id": "s1"}, ["r3", "r2"]),
        ({"trigger": "api"}, ["r5", "r3"]),
        ({"agent": "inbox", "user_id": "ann", "tenant_id": "acme", "tag": "prod"}, ["r1"]),
    ],
)
async def test_filters(store_url: str, store: RunStore, filters: dict[str, Any], expected: list[str]) -> None:
    seed(store_url, sample_runs())
    assert await ids(store, **filters) == expected


async def test_listed_runs_carry_their_usage_and_tags(store_url: str, store: RunStore) -> None:
    runs = sample_runs()
    seed(store_url, runs)
    page = await store.list_runs()
    assert page.runs == sorted(runs, key=lambda run: run.started_at, reverse=True)
    assert page.next_cursor is None


async def test_pages_follow_each_other_without_duplicates_or_gaps_while_runs_are_written(
    store_url: str, store: RunStore
) -> None:
    # Ten runs share one start time, so pages also split inside a tie (broken by id).
    originals = [make_run(f"p{i:02d}", started_at=at(i if i >= 10 else 0)) for i in range(25)]
    seed(store_url, originals)
    seen: list[str] = []
    cursor = None
    for page_number in range(20):
        page = await store.list_runs(limit=4, cursor=cursor)
        seen.extend(run.id for run in page.runs)
        # New runs arrive between pages: a newer one, and one tied with the page's last run that
        # sorts before it (same start, greater id). Neither may appear on a later page.
        last = page.runs[-1]
        seed(
            store_url,
            [
                make_run(f"new{page_number:02d}", started_at=at(100 + page_number)),
                make_run(f"{last.id}z", started_at=last.started_at),
            ],
        )
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    expected = [run.id for run in sorted(originals, key=lambda run: (run.started_at, run.id), reverse=True)]
    assert seen == expected


async def test_a_run_written_behind_the_cursor_shows_up_on_a_later_page(
    store_url: str, store: RunStore
) -> None:
    seed(store_url, [make_run(f"q{i}", started_at=at(10 * i)) for i in range(4)])
    first = await store.list_runs(limit=2)
    assert [run.id for run in first.runs] == ["q3", "q2"]
    seed(store_url, [make_run("late", started_at=at(5))])
    assert first.next_cursor is not None
    second = await store.list_runs(limit=10, cursor=first.next_cursor)
    assert [run.id for run in second.runs] == ["q1", "late", "q0"]


@pytest.mark.parametrize("limit", [0, 501, -1, True, 2.5])
async def test_limit_is_checked(store: RunStore, limit: Any) -> None:
    with pytest.raises(UsageError, match="limit must be an integer from 1 to 500"):
        await store.list_runs(limit=limit)


@pytest.mark.parametrize("cursor", ["garbage", "", "eyJhIjoxfQ", encode_cursor(T0, "x")[:-3] + "!!!"])
async def test_a_malformed_cursor_is_a_usage_error(store: RunStore, cursor: str) -> None:
    with pytest.raises(UsageError, match="invalid cursor"):
        await store.list_runs(cursor=cursor)


async def test_naive_datetimes_are_refused(store: RunStore) -> None:
    with pytest.raises(UsageError, match="since must be timezone-aware"):
        await store.list_runs(since=datetime(2025, 1, 1))
    with pytest.raises(UsageError, match="until must be timezone-aware"):
        await store.usage_totals("agent", until=datetime(2025, 1, 1))


async def test_tenant_scoping_hides_other_tenants_runs_and_spans(store_url: str, store: RunStore) -> None:
    trace = "c" * 32
    seed(
        store_url,
        [
            *sample_runs(),
            make_run("r6", tenant_id="acme", trace_id=trace),
            make_span(trace, "1" * 16, run_id="r6"),
            make_span(trace, "2" * 16, parent_span_id="1" * 16),  # no run id: belongs through its trace
            make_span("d" * 32, "3" * 16, run_id="r3"),
        ],
    )
    assert await store.get_run("r1", tenant_id="acme") is not None
    assert await store.get_run("r1", tenant_id="globex") is None
    assert [span.span_id for span in await store.spans_for_trace(trace, tenant_id="acme")] == [
        "1" * 16,
        "2" * 16,
    ]
    assert await store.spans_for_trace(trace, tenant_id="globex") == []
    assert [span.span_id for span in await store.spans_for_run("r6", tenant_id="acme")] == ["1" * 16]
    assert await store.spans_for_run("r3", tenant_id="acme") == []
    assert len(await store.spans_for_run("r3", tenant_id="globex")) == 1
    [acme] = await store.usage_totals("agent", tenant_id="acme")
    assert acme.runs == 3
