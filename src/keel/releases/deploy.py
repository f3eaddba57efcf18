"""`keel deploy` and `keel rollback`: what they do, for the CLI and the API alike.

Deploy (`deploy(root, url, actor=...)`):
1. load the project (every problem is reported and nothing is deployed);
2. push each prompt file as a new version where its content changed (`PromptRegistry.save` is
   idempotent: an unchanged file keeps its version);
3. create the release (or find the existing one with exactly these files and prompt versions);
4. move the deploy label (`prompts.deploy_label`, `production`) of each prompt to the release's
   version, and make the release live.
Servers following the database (`keel serve`, see `keel.releases.live`) switch within
`prompts.refresh_interval` seconds, without a restart; runs in flight finish on their release.

Rollback (`rollback(url, number, actor=...)`): make release `number` live again (by default the
release that was live before the current one) and move the deploy labels back to its versions.

Both are recorded in the audit log (`config.deployed`) and in the release and label histories.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncConnection

from keel.config import load_project
from keel.errors import UsageError
from keel.prompts.registry import PromptRegistry
from keel.prompts.rollout import Share
from keel.prompts.source import prompt_files, read_prompt
from keel.releases.snapshot import take
from keel.releases.store import Release, ReleaseStore, insert_activation
from keel.store import upgrade
from keel.store.audit import AuditEntry, AuditLog
from keel.store.tenancy import PROJECT_TENANT


@dataclass
class Outcome:
    release: Release
    created: bool  # a new release (False: these exact files were released before)
    activated: bool  # it was not live and now is
    new_versions: list[str] = field(default_factory=list)  # name@version pushed now
    moved: list[str] = field(default_factory=list)  # labels moved: name:label -> version
    previous: int | None = None  # the release live before
    gate: dict[str, Any] | None = None  # the deploy gate's verdict, when there is one

    def as_dict(self) -> dict[str, Any]:
        return {
            "release": self.release.as_dict(),
            "created": self.created,
            "activated": self.activated,
            "new_versions": self.new_versions,
            "moved_labels": self.moved,
            "previous_release": self.previous,
            "gate": self.gate,
        }


class GateFailed(UsageError):
    """The deploy gate's evaluation failed: nothing was deployed."""

    def __init__(self, verdict: dict[str, Any], eval_run: str) -> None:
        problems = "; ".join(verdict["problems"]) or "failed"
        super().__init__(
            f"the deploy gate failed (evaluation run {eval_run}): {problems}; nothing was deployed"
        )
        self.verdict, self.eval_run = verdict, eval_run


async def deploy(
    root: Path,
    url: str,
    *,
    actor: str,
    message: str | None = None,
    environ: dict[str, str] | None = None,
    skip_gate: bool = False,
) -> Outcome:
    project = load_project(root, environ=environ)  # ConfigError: nothing deployed
    await asyncio.to_thread(upgrade, url)
    label = project.config.prompts.deploy_label
    snapshot = take(project.root)
    async with PromptRegistry(url) as registry, ReleaseStore(url) as store:
        versions: dict[str, str] = {}
        pushed: list[str] = []
        for rel in prompt_files(project.root):
            source = read_prompt(project.root, rel)
            if isinstance(source, list):
                raise UsageError("; ".join(str(issue) for issue in source))
            version, created = await registry.save(
                source.name,
                source.content,
                author=actor,
                tenant_id=PROJECT_TENANT,
                version=source.version,
                message=source.message or message,
                owner=source.owner,
                source=f"file:{rel}",
            )
            versions[source.name] = version.version
            if created:
                pushed.append(version.ref)
        verdict: dict[str, Any] | None = None
        gate_config = project.config.evals.deploy_gate
        if gate_config is not None and not skip_gate:
            from keel.evals.gate import deploy_gate

            result, eval_run = await deploy_gate(project, url, gate_config, versions, actor=actor)
            verdict = {**result.as_dict(), "eval_run": eval_run}
            if not result.passed:
                await _audit_refusal(url, actor, verdict)
                raise GateFailed(verdict, eval_run)
        elif gate_config is not None:
            verdict = {"skipped": True}
        release, created = await store.create(snapshot, prompts=versions, author=actor, message=message)
        outcome = await _make_live(registry, store, release, label, actor, "deploy")
        outcome.created, outcome.new_versions, outcome.gate = created, pushed, verdict
    await _audit(url, actor, "deploy", outcome)
    return outcome


async def rollback(url: str, number: int | None, *, actor: str, label: str = "production") -> Outcome:
    await asyncio.to_thread(upgrade, url)
    async with PromptRegistry(url) as registry, ReleaseStore(url) as store:
        live = await store.live()
        if number is None:
            if live is None:
                raise UsageError("nothing is deployed yet: there is no release to roll back to")
            number = await _before(store, live[0].number)
        target = await store.get(number)
        outcome = await _make_live(registry, store, target, label, actor, "rollback")
    await _audit(url, actor, "rollback", outcome)
    return outcome


async def _before(store: ReleaseStore, current: int) -> int:
    for activation in await store.activations(limit=1000):
        if activation.number != current:
            return activation.number
    raise UsageError(f"release {current} is the only release that was ever live: give a release number")


async def _make_live(
    registry: PromptRegistry, store: ReleaseStore, release: Release, label: str, actor: str, reason: str
) -> Outcome:
    """Move the deploy labels to the release's versions and make it live, in one transaction: a
    server never sees the new release with the old labels, nor the reverse."""
    live = await store.live()
    previous = live[0].number if live is not None else None
    moves: list[tuple[str, str, list[Share]]] = []
    for name, version in release.prompts.items():
        current = await registry.label(name, label, tenant_id=PROJECT_TENANT)
        if current is not None and [(s.version, s.weight) for s in current.rollout] == [(version, 100.0)]:
            continue
        moves.append((name, label, [Share(version, 100.0)]))
    activated = previous != release.number

    async def activate(connection: AsyncConnection) -> None:
        if activated:
            await insert_activation(connection, release.number, actor=actor, reason=reason)

    for attempt in range(3):
        try:
            await registry.move_labels(
                moves,
                actor=actor,
                tenant_id=PROJECT_TENANT,
                reason=f"{reason} of release {release.number}",
                also=activate,
            )
            break
        except IntegrityError:  # another activation took the same id: try again
            if attempt == 2:
                raise
    moved = [f"{name}:{lbl} -> {shares[0].version}" for name, lbl, shares in moves]
    return Outcome(release, created=False, activated=activated, moved=moved, previous=previous)


async def _audit_refusal(url: str, actor: str, verdict: dict[str, Any]) -> None:
    async with AuditLog(url) as audit:
        await audit.append(
            AuditEntry(
                action="config.deployed",
                principal=actor,
                outcome="denied",
                target="deploy refused by its gate",
                detail={"kind": "deploy", "gate": verdict},
            )
        )


async def _audit(url: str, actor: str, kind: str, outcome: Outcome) -> None:
    async with AuditLog(url) as audit:
        await audit.append(
            AuditEntry(
                action="config.deployed",
                principal=actor,
                target=f"release {outcome.release.number}",
                detail={
                    "kind": kind,
                    "release": outcome.release.number,
                    "previous_release": outcome.previous,
                    "content_hash": outcome.release.content_hash,
                    "activated": outcome.activated,
                    "moved_labels": outcome.moved,
                    "gate": outcome.gate,
                },
            )
        )
