"""A server following the live release, and `--reload` following the project's files.

`ReleaseFollower` (every `keel serve` with storage, unless `--reload`): at start, and then every
`prompts.refresh_interval` seconds, it reads the latest release activation (one indexed query); when
another release became live, it loads that release's files from the database into
`.keel/releases/<number>-<hash>/` in the project folder, loads them as a project and makes it the
runner's live project. New runs use it at once; runs accepted before keep the release they were
accepted on (their durable request names it), also when resumed after a restart: `ensure` loads an
older release on demand. A release that fails to load is logged and skipped: the server goes on
with what it has (a broken release never takes a server down).

What a release switches without a restart: agents (added, changed, removed), their tools'
settings, instructions and prompts, schemas, models and fallbacks. What it does not: the process
settings of `keel.yaml` (`storage`, `server`, `gateway`, `tracing`) and Python code already
imported (a module is imported once per process): those need a restart, and the server logs a
warning when a release changes them.

`FileWatcher` (`keel serve --reload`, for development): checks the project's files every 0.5 s
(names, sizes and modification times) and, when something changed and the project loads, makes
the files the live project, prompts included (the registry's labels are not followed in this mode).
A project that does not load is logged with its problems and the previous one stays live.
"""

from __future__ import annotations

import asyncio
import logging
import os
import shutil
import tempfile
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path

from keel.config import load_project
from keel.config.project import Project
from keel.errors import ConfigError
from keel.releases.snapshot import materialize
from keel.releases.store import ReleaseStore
from keel.runtime.runner import Runner

log = logging.getLogger("keel.releases")

OnSwitch = Callable[[Project], Awaitable[None]]
RELEASES_DIR = Path(".keel") / "releases"
WATCH_INTERVAL = 0.5


class ReleaseFollower:
    def __init__(
        self,
        runner: Runner,
        *,
        interval: float,
        environ: Mapping[str, str] | None = None,
    ) -> None:
        assert runner.database_url is not None
        self.runner = runner
        self.root = runner.project.root
        self.interval = interval
        self.environ = dict(os.environ if environ is None else environ)
        self.store = ReleaseStore(runner.database_url)
        self.on_switch: list[OnSwitch] = []
        self._task: asyncio.Task[None] | None = None
        self._loading: dict[int, asyncio.Lock] = {}
        self._failed: set[int] = set()
        self._checking = asyncio.Lock()

    async def start(self) -> None:
        registry = self.runner.prompts.registry
        if registry is not None:  # labels are re-read when this follower polls, with the live release
            registry.label_ttl = float("inf")
        await self.check()
        self._task = asyncio.create_task(self._poll(), name="keel-release-follower")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None
        await self.store.close()

    async def check(self) -> bool:
        """Switch to the live release if it is not the runner's live one; True if it switched."""
        async with self._checking:
            return await self._check()

    async def _check(self) -> bool:
        activation = await self.store.live_activation()
        current = self.runner.activation
        if activation is None:
            self.runner.activation = None
            return False
        if activation.id == current:
            return False
        registry = self.runner.prompts.registry
        if activation.number == self.runner.release:  # the same release again: its labels moved
            if registry is not None:
                registry.forget_labels()
            self.runner.activation = activation.id
            return True
        if activation.number in self._failed:
            return False
        project = await self.ensure(activation.number)
        if project is None:
            return False
        self._warn_process_settings(project)
        if registry is not None:  # the labels moved with the release: read them afresh
            registry.forget_labels()
        self.runner.use_release(activation.number, project)
        self.runner.activation = activation.id
        log.info(
            "release %d is live (%s by %s)", activation.number, activation.reason, activation.activated_by
        )
        for hook in self.on_switch:
            await hook(project)
        return True

    async def ensure(self, number: int) -> Project | None:
        """Release `number` loaded in the runner (loading it if needed); None if it cannot load."""
        known = self.runner.project_for(number)
        if known is not None:
            return known
        lock = self._loading.setdefault(number, asyncio.Lock())
        async with lock:
            known = self.runner.project_for(number)
            if known is not None:
                return known
            try:
                project = await self._load(number)
            except ConfigError as exc:  # a broken release must not take the server down
                self._failed.add(number)
                log.error("release %d does not load, staying on what is live:\n%s", number, exc)
                return None
            except Exception as exc:  # the database, the disk: try again at the next check
                log.warning("release %d could not be loaded now (%s); retrying", number, exc)
                return None
            self.runner.add_release(number, project)
            return project

    async def _load(self, number: int) -> Project:
        release = await self.store.get(number)
        folder = self.root / RELEASES_DIR / f"{number}-{release.content_hash[:12]}"
        if not await asyncio.to_thread(folder.is_dir):
            files = await self.store.files(number)
            await asyncio.to_thread(_place, files, folder)
        return await asyncio.to_thread(load_project, folder, environ=self.environ)

    def _warn_process_settings(self, project: Project) -> None:
        before, after = self.runner.project.config, project.config
        changed = [
            name
            for name in ("storage", "server", "gateway", "tracing")
            if getattr(before, name) != getattr(after, name)
        ]
        if changed:
            log.warning(
                "the live release changes keel.yaml's %s settings: they apply after a restart",
                ", ".join(changed),
            )

    async def _poll(self) -> None:
        while True:
            await asyncio.sleep(self.interval)
            try:
                registry = self.runner.prompts.registry
                if registry is not None and not await self.check():
                    registry.forget_labels()  # label moves made without a release (the console)
            except Exception:
                log.warning("checking for a new live release failed; retrying", exc_info=True)


class FileWatcher:
    """`keel serve --reload`: the project's files are the live project, reloaded when they change."""

    def __init__(self, runner: Runner, *, environ: Mapping[str, str] | None = None) -> None:
        self.runner = runner
        self.root = runner.project.root
        self.environ = dict(os.environ if environ is None else environ)
        self.on_switch: list[OnSwitch] = []
        self._task: asyncio.Task[None] | None = None
        self._seen = _fingerprint(self.root)

    async def start(self) -> None:
        self.runner.prompts.follow_registry = False
        self._task = asyncio.create_task(self._watch(), name="keel-file-watcher")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def check(self) -> bool:
        """Reload if the files changed; True when a new project became live."""
        seen = await asyncio.to_thread(_fingerprint, self.root)
        if seen == self._seen:
            return False
        self._seen = seen
        try:
            project = await asyncio.to_thread(load_project, self.root, environ=self.environ)
        except ConfigError as exc:
            log.error("the project has problems; still serving the previous version:\n%s", exc)
            return False
        self.runner.use_release(None, project)
        log.info("reloaded the project's files")
        for hook in self.on_switch:
            await hook(project)
        return True

    async def _watch(self) -> None:
        while True:
            await asyncio.sleep(WATCH_INTERVAL)
            try:
                await self.check()
            except Exception:
                log.warning("reloading the project failed", exc_info=True)


def _place(files: dict[str, bytes], folder: Path) -> None:
    """Write a release's files to `folder` atomically (a scratch folder renamed into place)."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix=f".{folder.name}-", dir=folder.parent))
    materialize(files, scratch)
    try:
        scratch.rename(folder)
    except OSError:  # another process placed it first
        shutil.rmtree(scratch, ignore_errors=True)


def _fingerprint(root: Path) -> tuple[tuple[str, int, int], ...]:
    out: list[tuple[str, int, int]] = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(
            d for d in dirs if not d.startswith(".") and d not in ("__pycache__", "node_modules")
        )
        for name in sorted(files):
            if name.startswith("."):
                continue
            path = Path(folder) / name
            try:
                stat = path.stat()
            except OSError:
                continue
            out.append((path.relative_to(root).as_posix(), stat.st_mtime_ns, stat.st_size))
    return tuple(out)
