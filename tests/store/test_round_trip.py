"""What is written is what is read: every field of runs and spans, and no duplicates on re-insert."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal

from keel.store import RunStore
from keel.store.records import RunRecord
from tests.store.factories import T0, count_rows, event, make_run, make_span, seed, usage

PARIS = timezone(timedelta(hours=2))


def full_run() -> RunRecord:
    """A run with every field set to a non-default value."""
    started = datetime(2025, 6, 30, 23, 59, 59, 123456, tzinfo=PARIS)
    return RunRecord(
        id="run-full-ü",
        agent="inbox",
        config_hash="sha256:abc",
        status="failed",
        trigger="api",
        started_at=started,
        ended_at=started + timedelta(seconds=2, microseconds=5),
        duration_ms=2000.005,
        input={"message": "Grüße aus Köln 👋", "nested": [1, 2.5, None, True, {"深": "さ"}]},
        output=["a", {"b": None}],
        error_category="tool_error",
        error_message="lookup failed: ☠",
        model_requests=3,
        tool_calls=4,
        retries=2,
        input_tokens=1234,
        output_tokens=567,
        cost_usd=Decimal("0.0123456789"),
        usage=(
            usage("openai:gpt-4o-mini", 2, (1000, 500), "0.0123456789"),
            usage("anthropic:claude", 1, (234, 67), None),
        ),
        tool_failures=("lookup", "lookup"),
        tools_called=("lookup", "search", "lookup", "lookup"),
        prompt_version="v7",
        release=12,
        session_id="session-1",
        user_id="user@example.com",
        tenant_id="acme",
        parent_run_id="run-parent",
        trace_id="0af7651916cd43dd8448eb211c80319c",
        tags=("prod", "beta", "prod"),
        metadata={"region": "eu", "nested": {"list": [1, "två"]}},
    )


def test_the_full_run_sets_every_field() -> None:
    # Guards the round trip below: a field added to RunRecord must be set in full_run too.
    run = full_run()
    required = {f.name: getattr(run, f.name) for f in dataclasses.fields(RunRecord) if not _has_default(f)}
    bare = RunRecord(**required)
    left_at_default = [
        f.name
        for f in dataclasses.fields(RunRecord)
        if _has_default(f) and getattr(run, f.name) == getattr(bare, f.name)
    ]
    assert left_at_default == []


def _has_default(field: dataclasses.Field[object]) -> bool:
    return field.default is not dataclasses.MISSING or field.default_factory is not dataclasses.MISSING


async def test_every_run_field_round_trips(store_url: str, store: RunStore) -> None:
    run = full_run()
    seed(store_url, [run])
    stored = await store.get_run(run.id)
    assert stored == run
    assert stored is not None
    assert stored.started_at.tzinfo is UTC
    assert stored.started_at == datetime(2025, 6, 30, 21, 59, 59, 123456, tzinfo=UTC)
    assert stored.cost_usd == Decimal("0.0123456789")
    assert isinstance(stored.usage[0].cost_usd, Decimal)
    assert stored.usage[1].cost_usd is None
    assert stored.input["message"] == "Grüße aus Köln 👋"


async def test_a_minimal_run_round_trips(store_url: str, store: RunStore) -> None:
    run = make_run("run-min", input=None, output=None)
    seed(store_url, [run])
    assert await store.get_run("run-min") == run
    assert await store.get_run("missing") is None


async def test_json_scalars_and_strings_round_trip(store_url: str, store: RunStore) -> None:
    runs = [
        make_run(f"run-{i}", input=value, output=value)
        for i, value in enumerate(["plain", 42, 1.5, True, []])
    ]
    seed(store_url, runs)
    for run in runs:
        assert await store.get_run(run.id) == run


async def test_nul_characters_are_replaced_identically_on_both_backends(
    store_url: str, store: RunStore
) -> None:
    seed(store_url, [make_run("run-nul", error_message="bad\x00byte", input={"t": "x\x00y"})])
    stored = await store.get_run("run-nul")
    assert stored is not None
    assert stored.error_message == "bad\ufffdbyte"
    assert stored.input == {"t": "x\ufffdy"}


async def test_writing_a_run_twice_stores_it_once(store_url: str, store: RunStore) -> None:
    run = full_run()
    seed(store_url, [run])
    seed(store_url, [run, run])
    assert await store.get_run(run.id) == run
    assert count_rows(store_url, "runs") == 1
    assert count_rows(store_url, "run_usage") == 2
    assert count_rows(store_url, "run_tags") == 3
    assert count_rows(store_url, "run_tools") == 2


async def test_tool_counts_per_run(store_url: str, store: RunStore) -> None:
    seed(store_url, [full_run()])
    [stats] = await store.run_stats()
    assert [(tool.tool, tool.calls, tool.failures) for tool in stats.tools] == [
        ("lookup", 3, 2),
        ("search", 1, 0),
    ]


async def test_spans_round_trip_by_run_and_by_trace(store_url: str, store: RunStore) -> None:
    trace, other = "a" * 32, "b" * 32
    root = make_span(
        trace,
        "1" * 16,
        run_id="run-1",
        start=T0,
        attributes={"gen_ai.agent.name": "inbox", "keel.run.id": "run-1", "note": "naïve ✓"},
        events=(event("retry", T0 + timedelta(milliseconds=1), attempt=2),),
    )
    child = make_span(
        trace,
        "2" * 16,
        parent_span_id="1" * 16,
        start=T0 + timedelta(milliseconds=2),
        name="chat gpt-4o-mini",
        kind="client",
        status="error",
        status_message="429",
    )
    tool = make_span(
        trace, "3" * 16, run_id="run-1", parent_span_id="1" * 16, start=T0 + timedelta(milliseconds=1)
    )
    unrelated = make_span(other, "4" * 16, run_id="run-2", start=T0)
    seed(store_url, [child, root, unrelated, tool])
    seed(store_url, [root, child])  # re-delivery: no duplicates

    assert await store.spans_for_trace(trace) == [root, tool, child]
    assert await store.spans_for_run("run-1") == [root, tool]
    assert await store.spans_for_run("nothing") == []
    stored_root = (await store.spans_for_trace(trace))[0]
    assert stored_root.events[0].time.tzinfo is UTC
    assert count_rows(store_url, "spans") == 4
