"""Callback endpoints: which URLs may be called back (parsed, not string prefixes), and secrets
resolved at start-up with errors that name the endpoint but never a secret."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.api.callbacks import CallbackEndpoints, CallbackUrlRefused
from keel.config.schema import CallbackEndpoint, CallbacksConfig
from keel.errors import UsageError


def endpoints(*urls: str) -> CallbackEndpoints:
    """Endpoints with one secret each, in variables S0, S1, ... holding secret-0, secret-1, ..."""
    config = CallbacksConfig(
        endpoints=[CallbackEndpoint(url=url, secret_env=f"S{i}") for i, url in enumerate(urls)]
    )
    return CallbackEndpoints.from_config(
        config, Path("."), {f"S{i}": f"secret-{i}" for i in range(len(urls))}
    )


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://hooks.example.com/keel/run", True),
        ("https://hooks.example.com/keel/", True),
        ("https://hooks.example.com/keel/a/b?token=1", True),
        ("https://hooks.example.com/keel", False),  # the endpoint ends with /: only below it
        ("https://hooks.example.com/keelx/run", False),
        ("https://hooks.example.com/other", False),
        ("HTTPS://Hooks.Example.COM/keel/run", True),  # scheme and host are case-insensitive
        ("https://hooks.example.com/KEEL/run", False),  # paths are not
        ("https://hooks.example.com:443/keel/run", True),  # the default port, written out
        ("https://hooks.example.com:8443/keel/run", False),
        ("http://hooks.example.com/keel/run", False),
        ("https://evil.hooks.example.com/keel/run", False),
        ("https://hooks.example.com.evil.com/keel/run", False),
        ("https://hooks.example.com@evil.com/keel/run", False),
    ],
)
def test_matching_compares_parsed_urls(url: str, allowed: bool) -> None:
    assert (endpoints("https://hooks.example.com/keel/").match(url) is not None) is allowed


@pytest.mark.parametrize(
    ("url", "allowed"),
    [
        ("https://h.example/keel", True),
        ("https://h.example/keel/", True),
        ("https://h.example/keel/x", True),
        ("https://h.example/keel?x=1", True),
        ("https://h.example/keelx", False),
        ("https://h.example/kee", False),
    ],
)
def test_a_prefix_without_trailing_slash_matches_on_a_segment_boundary(url: str, allowed: bool) -> None:
    assert (endpoints("https://h.example/keel").match(url) is not None) is allowed


def test_explicit_ports_and_host_only_endpoints() -> None:
    found = endpoints("http://localhost:8080", "https://h.example:443/")
    assert found.match("http://localhost:8080/any/path") is not None
    assert found.match("http://LOCALHOST:8080") is not None
    assert found.match("http://localhost/any/path") is None
    assert found.match("https://h.example/x") is not None


def test_the_longest_matching_endpoint_wins() -> None:
    found = endpoints("https://h.example/", "https://h.example/keel/special/", "https://h.example/keel/")
    assert found.require("https://h.example/keel/special/run").secrets == ("secret-1",)
    assert found.require("https://h.example/keel/run").secrets == ("secret-2",)
    assert found.require("https://h.example/else").secrets == ("secret-0",)


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://user:pass@hooks.example.com/keel/run", "credentials"),
        ("https://user@hooks.example.com/keel/run", "credentials"),
        ("https://hooks.example.com/keel/run#frag", "fragment"),
        ("https://hooks.example.com/keel/run#", "fragment"),
        ("https://hooks.example.com/keel/../admin", r"\. or \.\. segments"),
        ("https://hooks.example.com/keel/%2e%2E/admin", r"\. or \.\. segments"),
        ("https://hooks.example.com/keel/./run", r"\. or \.\. segments"),
        ("https://hooks.example.com/keel/..%2Fadmin", "encoded slashes"),
        ("https://hooks.example.com/keel/..\\admin", "backslashes"),
        ("https://hooks.example.com/keel/ run", "whitespace"),
        ("ftp://hooks.example.com/keel/run", "http:// or https://"),
        ("https:///keel/run", "no host"),
        ("https://hooks.example.com:99999/keel/", "not valid"),
        ("https://hooks.example.com/elsewhere", "not under any URL"),
    ],
)
def test_refused_urls_say_why(url: str, reason: str) -> None:
    found = endpoints("https://hooks.example.com/keel/")
    assert found.match(url) is None
    with pytest.raises(CallbackUrlRefused, match=reason):
        found.require(url)
    assert issubclass(CallbackUrlRefused, UsageError)


def test_secrets_come_from_env_file_and_previous_env_and_never_show(tmp_path: Path) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "hook").write_text("from-a-file\n")
    absolute = tmp_path / "absolute-secret"
    absolute.write_text("  absolute  ")
    config = CallbacksConfig(
        endpoints=[
            CallbackEndpoint(url="https://a.example/", secret_env="NEW", previous_secret_env="OLD"),
            CallbackEndpoint(url="https://b.example/", secret_file="secrets/hook"),
            CallbackEndpoint(url="https://c.example/", secret_file=str(absolute)),
        ]
    )
    found = CallbackEndpoints.from_config(config, tmp_path, {"NEW": "new-secret", "OLD": "old-secret"})

    a = found.require("https://a.example/x")
    assert a.secrets == ("new-secret", "old-secret")  # newest first
    assert found.require("https://b.example/x").secrets == ("from-a-file",)
    assert found.require("https://c.example/x").secrets == ("absolute",)
    assert "secret" not in repr(a).replace("secrets=", "")
    assert repr(a) == "ResolvedEndpoint(url='https://a.example/', secrets=<2 hidden>)"


def test_every_unusable_endpoint_is_reported_without_secret_values(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "binary").write_bytes(b"\xff\xfe")
    config = CallbacksConfig(
        endpoints=[
            CallbackEndpoint(url="https://ok.example/", secret_env="GOOD", previous_secret_env="OLD_MISSING"),
            CallbackEndpoint(url="https://env.example/", secret_env="MISSING"),
            CallbackEndpoint(url="https://blank.example/", secret_env="BLANK"),
            CallbackEndpoint(url="https://nofile.example/", secret_file="nope/secret"),
            CallbackEndpoint(url="https://empty.example/", secret_file="empty"),
            CallbackEndpoint(url="https://binary.example/", secret_file="binary"),
            CallbackEndpoint(url="https://user:pw@creds.example/", secret_env="GOOD"),
            CallbackEndpoint(url="https://OK.example:443/", secret_env="GOOD"),
        ]
    )
    with pytest.raises(UsageError) as caught:
        CallbackEndpoints.from_config(config, tmp_path, {"GOOD": "very-secret-value", "BLANK": "  "})

    message = str(caught.value)
    for expected in (
        "endpoints[0] (https://ok.example/): the environment variable OLD_MISSING is not set",
        "endpoints[1] (https://env.example/): the environment variable MISSING is not set",
        "endpoints[2] (https://blank.example/): the environment variable BLANK is empty",
        f"endpoints[3] (https://nofile.example/): cannot read secret_file {tmp_path / 'nope/secret'}",
        f"endpoints[4] (https://empty.example/): secret_file {tmp_path / 'empty'} is empty",
        f"endpoints[5] (https://binary.example/): secret_file {tmp_path / 'binary'} is not UTF-8 text",
        "endpoints[6] (https://user:pw@creds.example/): the URL must not carry credentials",
        "endpoints[7] (https://OK.example:443/): the same destination as server.callbacks.endpoints[0]",
    ):
        assert expected in message
    assert "very-secret-value" not in message


def test_no_endpoints_allow_nothing() -> None:
    found = CallbackEndpoints.from_config(CallbacksConfig(), Path("."), {})
    assert found.match("https://hooks.example.com/") is None
