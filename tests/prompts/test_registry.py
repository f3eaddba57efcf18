"""The stored prompt registry on SQLite and PostgreSQL: immutable versions, labels, tenants, canaries."""

from __future__ import annotations

import asyncio
import collections
from typing import Any

import pytest
from sqlalchemy import create_engine, text
from sqlalchemy.exc import IntegrityError

from keel.prompts.errors import PromptError, PromptNotFound
from keel.prompts.registry import PromptRegistry, diff
from keel.prompts.rollout import Share
from keel.prompts.source import PromptContent
from keel.store import upgrade
from keel.store.tenancy import PROJECT_TENANT
from keel.store.urls import sync_url


def content(body: str = "Hello {{ who }}.", **settings: Any) -> PromptContent:
    return PromptContent(body, ("who",), model_settings=settings)


def run(coro: Any) -> Any:
    return asyncio.run(coro)


@pytest.fixture
def url(database_url: str) -> str:
    upgrade(database_url)
    return database_url


def test_saving_numbers_versions_and_is_idempotent(url: str) -> None:
    async def go() -> None:
        async with PromptRegistry(url) as registry:
            first, created = await registry.save("greet", content(), author="cli")
            assert (first.version, created) == ("1.0.0", True)
            again, created = await registry.save("greet", content(), author="cli")
            assert (again.id, created) == (first.id, False)
            second, _ = await registry.save("greet", content("Hi {{ who }}."), author="cli")
            assert second.version == "1.0.1"
            third, _ = await registry.save("greet", content("Yo {{ who }}."), author="cli", version="2.0.0")
            assert third.version == "2.0.0"
            with pytest.raises(PromptError, match="not newer") as older:
                await registry.save("greet", content("Hey {{ who }}."), author="cli", version="1.5.0")
            assert older.value.code == "version_not_newer"
            with pytest.raises(PromptError) as bad:
                await registry.save("greet", content("Hey {{ who }}."), author="cli", version="2.1")
            assert bad.value.code == "invalid_version"
            got = await registry.get("greet", "1.0.1", tenant_id=None)
            assert got.render({"who": "Ada"}) == "Hi Ada."
            assert [v.version for v in await registry.history("greet", tenant_id=None)] == [
                "2.0.0",
                "1.0.1",
                "1.0.0",
            ]
            assert "-Hello {{ who }}." in diff(first, second) and "+Hi {{ who }}." in diff(first, second)

    run(go())


def test_a_stored_version_can_never_change(url: str) -> None:
    async def go() -> str:
        async with PromptRegistry(url) as registry:
            version, _ = await registry.save("greet", content(), author="cli")
            await registry.link("greet", "1.0.0", kind="eval_run", ref="ev-1", actor="cli", tenant_id=None)
            await registry.move_label("greet", "production", [Share("1.0.0", 100)], actor="cli")
            return version.id

    version_id = run(go())
    engine = create_engine(sync_url(url))
    statements = [
        ("UPDATE prompt_versions SET template = 'pwned' WHERE id = :id", {"id": version_id}),
        ("UPDATE prompt_versions SET template = 'pwned'", {}),
        ("DELETE FROM prompt_versions WHERE id = :id", {"id": version_id}),
        ("DELETE FROM prompt_label_moves", {}),
        ("UPDATE prompt_links SET ref = 'x'", {}),
    ]
    try:
        for statement, params in statements:
            with pytest.raises(IntegrityError), engine.begin() as connection:
                connection.execute(text(statement), params)
        if engine.dialect.name == "sqlite":  # INSERT OR REPLACE would delete without a delete trigger
            with pytest.raises(IntegrityError), engine.begin() as connection:
                connection.execute(
                    text(
                        "INSERT OR REPLACE INTO prompt_versions SELECT * FROM prompt_versions WHERE id = :id"
                    ),
                    {"id": version_id},
                )
        with engine.begin() as connection:
            template = connection.execute(
                text("SELECT template FROM prompt_versions WHERE id = :id"), {"id": version_id}
            ).scalar()
        assert template == "Hello {{ who }}."
    finally:
        engine.dispose()


def test_labels_move_with_history_and_tenants_override_the_project(url: str) -> None:
    async def go() -> None:
        async with PromptRegistry(url, label_ttl=0) as registry:
            await registry.save("greet", content(), author="cli")
            await registry.save("greet", content("Hi {{ who }}."), author="cli")
            await registry.move_label("greet", "production", [Share("1.0.0", 100)], actor="cli")
            await registry.move_label(
                "greet", "production", [Share("1.0.1", 100)], actor="cli", reason="better"
            )
            found = await registry.resolve("greet", "production", tenant_id="acme", run_id="r1")
            assert found is not None and found[0].version == "1.0.1"
            moves = await registry.moves("greet", tenant_id=None)
            assert [m["rollout"][0]["version"] for m in moves] == ["1.0.1", "1.0.0"]
            assert (
                moves[0]["previous"] == [{"version": "1.0.0", "weight": 100.0}]
                and moves[0]["reason"] == "better"
            )

            # Tenant acme writes its own version and label: only acme's runs see them.
            own, _ = await registry.save(
                "greet", content("Howdy {{ who }}."), author="user:a", tenant_id="acme"
            )
            assert own.version == "1.0.0" and own.tenant_id == "acme"
            await registry.move_label(
                "greet", "production", [Share("1.0.0", 100)], actor="user:a", tenant_id="acme"
            )
            acme = await registry.resolve("greet", "production", tenant_id="acme", run_id="r2")
            other = await registry.resolve("greet", "production", tenant_id="globex", run_id="r3")
            assert acme is not None and acme[0].render({"who": "x"}) == "Howdy x."
            assert other is not None and other[0].render({"who": "x"}) == "Hi x."
            assert {v.tenant_id for v in await registry.history("greet", tenant_id="globex")} == {
                PROJECT_TENANT
            }
            project_moves = [
                m for m in await registry.moves("greet", tenant_id=None) if m["scope"] == "project"
            ]
            assert await registry.moves("greet", tenant_id="globex") == project_moves
            assert len(await registry.moves("greet", tenant_id="acme")) == 3
            with pytest.raises(PromptNotFound):
                await registry.history("private", tenant_id="globex")
            await registry.save("private", content(), author="user:a", tenant_id="acme")
            with pytest.raises(PromptNotFound):  # acme's own prompt: invisible to globex
                await registry.history("private", tenant_id="globex")
            with pytest.raises(PromptNotFound):  # and globex cannot point a label at acme's version
                await registry.move_label(
                    "private", "staging", [Share("1.0.0", 100)], actor="u", tenant_id="globex"
                )
            with pytest.raises(PromptError) as bad:
                await registry.move_label("greet", "production", [Share("1.0.0", 60)], actor="cli")
            assert bad.value.code == "invalid_rollout"

    run(go())


def test_a_label_move_reaches_other_processes_within_the_ttl(url: str) -> None:
    async def go() -> None:
        async with PromptRegistry(url, label_ttl=0.2) as mover, PromptRegistry(url, label_ttl=0.2) as reader:
            await mover.save("greet", content(), author="cli")
            await mover.save("greet", content("Hi {{ who }}."), author="cli")
            await mover.move_label("greet", "production", [Share("1.0.0", 100)], actor="cli")
            first = await reader.resolve("greet", "production", tenant_id="t", run_id="a")
            assert first is not None and first[0].version == "1.0.0"
            await mover.move_label("greet", "production", [Share("1.0.1", 100)], actor="cli")
            await asyncio.sleep(0.25)
            later = await reader.resolve("greet", "production", tenant_id="t", run_id="b")
            assert later is not None and later[0].version == "1.0.1"

    run(go())


def test_a_canary_split_lands_on_target_and_each_user_stays_on_one_version(url: str) -> None:
    async def go() -> tuple[collections.Counter[str], dict[str, set[str]]]:
        async with PromptRegistry(url) as registry:
            await registry.save("greet", content(), author="cli")
            await registry.save("greet", content("Hi {{ who }}."), author="cli")
            await registry.move_label(
                "greet", "production", [Share("1.0.0", 90), Share("1.0.1", 10)], actor="cli", sticky="user"
            )
            counts: collections.Counter[str] = collections.Counter()
            seen: dict[str, set[str]] = collections.defaultdict(set)
            for i in range(2000):
                user = f"user-{i}"
                found = await registry.resolve(
                    "greet", "production", tenant_id="t", run_id=f"r{i}", user_id=user
                )
                assert found is not None
                counts[found[0].version] += 1
                seen[user].add(found[0].version)
            for i in range(0, 2000, 7):  # the same users again, in other runs and sessions
                user = f"user-{i}"
                found = await registry.resolve(
                    "greet", "production", tenant_id="t", run_id=f"again{i}", user_id=user, session_id=f"s{i}"
                )
                assert found is not None
                seen[user].add(found[0].version)
            return counts, seen

    counts, seen = run(go())
    share = counts["1.0.1"] / 2000
    assert abs(share - 0.10) <= 0.03, counts
    assert all(len(versions) == 1 for versions in seen.values())
