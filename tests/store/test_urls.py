"""Database URLs: resolution against the project, the env override, drivers, masking."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.errors import UsageError
from keel.store.engine import dumps_json
from keel.store.urls import async_url, describe_error, mask_url, resolve_database_url, sync_url


def test_relative_sqlite_path_is_relative_to_the_project_and_its_folder_is_created(tmp_path: Path) -> None:
    url = resolve_database_url("sqlite:///.keel/keel.db", tmp_path, {})
    assert url == f"sqlite:///{tmp_path / '.keel' / 'keel.db'}"
    assert (tmp_path / ".keel").is_dir()


def test_absolute_sqlite_path_is_kept(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere" / "runs.db"
    assert resolve_database_url(f"sqlite:///{target}", Path("/nonexistent"), {}) == f"sqlite:///{target}"
    assert target.parent.is_dir()


def test_environment_overrides_the_configured_url(tmp_path: Path) -> None:
    environ = {"KEEL_DATABASE_URL": "postgresql://keel:s3cret@db.internal:5432/keel"}
    assert resolve_database_url("sqlite:///.keel/keel.db", tmp_path, environ) == environ["KEEL_DATABASE_URL"]
    assert resolve_database_url("sqlite:///a.db", tmp_path, {"KEEL_DATABASE_URL": "  "}).endswith("/a.db")


@pytest.mark.parametrize(
    "configured",
    ["postgres://u:p@h:5432/db", "postgresql://u:p@h:5432/db", "postgresql+psycopg2://u:p@h:5432/db"],
)
def test_postgres_urls_are_normalized(configured: str, tmp_path: Path) -> None:
    url = resolve_database_url(configured, tmp_path, {})
    assert url == "postgresql://u:p@h:5432/db"
    assert sync_url(url).drivername == "postgresql+psycopg"
    assert async_url(url).drivername == "postgresql+psycopg"


def test_sqlite_drivers(tmp_path: Path) -> None:
    url = resolve_database_url("sqlite:///k.db", tmp_path, {})
    assert sync_url(url).drivername == "sqlite+pysqlite"
    assert async_url(url).drivername == "sqlite+aiosqlite"
    assert sync_url(url).database == str(tmp_path / "k.db")


@pytest.mark.parametrize(
    ("configured", "fragment"),
    [
        ("mysql://root:hunter2@localhost/db", "unsupported database URL"),
        ("not a url", "invalid database URL"),
        ("sqlite://", "in-memory SQLite"),
        ("sqlite:///:memory:", "in-memory SQLite"),
    ],
)
def test_unusable_urls_are_usage_errors_without_the_password(
    configured: str, fragment: str, tmp_path: Path
) -> None:
    with pytest.raises(UsageError, match=fragment) as caught:
        resolve_database_url(configured, tmp_path, {})
    assert "hunter2" not in str(caught.value)


def test_mask_url_hides_passwords_everywhere() -> None:
    assert mask_url("postgresql://keel:s3cret@db:5432/keel") == "postgresql://keel:***@db:5432/keel"
    assert (
        mask_url("postgresql://db/keel?user=k&password=s3cret") == "postgresql://db/keel?user=k&password=***"
    )
    assert mask_url("postgresql://keel@db/keel") == "postgresql://keel@db/keel"
    assert (
        mask_url("could not connect to postgresql://a:b@c/d") == "could not connect to postgresql://a:***@c/d"
    )


def test_describe_error_masks_the_password_and_drops_sql() -> None:
    error = RuntimeError('password authentication failed for "keel" (password s3cret)\nDETAIL: more')
    described = describe_error(error, "postgresql://keel:s3cret@db/keel")
    assert described == 'RuntimeError: password authentication failed for "keel" (password ***)'


def test_json_encoding_keeps_unicode_and_replaces_nul() -> None:
    assert dumps_json({"t": "héllo ✓"}) == '{"t":"héllo ✓"}'
    assert dumps_json({"t": "a\x00b"}) == '{"t":"a\\ufffdb"}'
    # A literal backslash followed by u0000 is text, not a NUL character: kept.
    assert dumps_json({"t": "\\u0000"}) == '{"t":"\\\\u0000"}'


def test_json_encoding_turns_non_finite_numbers_into_null() -> None:
    assert dumps_json({"a": [1.5, float("nan")], "b": float("inf")}) == '{"a":[1.5,null],"b":null}'
