"""Prompt templates and prompt files: strict variables, located errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from keel.errors import ConfigIssue
from keel.prompts.errors import VariableError
from keel.prompts.source import PromptSource, parse_prompt, read_prompt
from keel.prompts.template import Template


def test_render_fills_declared_variables_and_keeps_values_verbatim() -> None:
    template = Template("Hi {{ name }}, order {{order}}. {{{{literal}}}}", ["name", "order"])
    text = template.render({"name": "{{ order }}", "order": 42})
    assert text == "Hi {{ order }}, order 42. {{literal}}"


def test_missing_and_unknown_variables_are_errors_not_empty_strings() -> None:
    template = Template("Hi {{ name }}.", ["name"])
    with pytest.raises(VariableError, match="missing prompt variable 'name'") as missing:
        template.render({})
    assert missing.value.code == "prompt_variable_missing"
    with pytest.raises(VariableError, match="unknown prompt variable 'nmae'") as unknown:
        template.render({"name": "a", "nmae": "b"})
    assert unknown.value.code == "prompt_variable_unknown"


def test_defaults_fill_in_and_are_overridden() -> None:
    template = Template("{{ a }}/{{ b }}", ["a", "b"], {"b": "dflt"})
    assert template.render({"a": 1}) == "1/dflt"
    assert template.render({"a": 1, "b": [1, 2]}) == "1/[1, 2]"


def test_declarations_must_match_the_text() -> None:
    with pytest.raises(VariableError, match="uses 'b' but does not declare it"):
        Template("{{ a }} {{ b }}", ["a"])
    with pytest.raises(VariableError, match="declares 'c' in `variables` but never uses it"):
        Template("{{ a }}", ["a", "c"])
    with pytest.raises(VariableError, match="not a valid placeholder"):
        Template("{{ a-b }}", [])


def test_prompt_file_with_front_matter(tmp_path: Path) -> None:
    (tmp_path / "prompts").mkdir()
    (tmp_path / "prompts" / "triage.md").write_text(
        "---\nversion: 2.1.0\nowner: support\nvariables:\n  team: {description: who}\n  tier: {default: gold}\n"
        "model_settings: {temperature: 0.3}\n---\nYou help {{ team }} ({{ tier }}).\n"
    )
    source = read_prompt(tmp_path, "prompts/triage.md")
    assert isinstance(source, PromptSource)
    assert (source.name, source.version, source.owner) == ("triage", "2.1.0", "support")
    assert source.content.variables == ("team", "tier")
    assert source.content.defaults == {"tier": "gold"}
    assert source.content.model_settings == {"temperature": 0.3}
    assert source.content.template_object().render({"team": "ops"}) == "You help ops (gold).\n"


def test_content_hash_ignores_metadata_but_not_content() -> None:
    a = parse_prompt("---\nowner: x\n---\nHello.\n", "prompts/a.md", "a")
    b = parse_prompt("---\nowner: y\nmessage: new owner\n---\nHello.\n", "prompts/a.md", "a")
    c = parse_prompt("Hello!\n", "prompts/a.md", "a")
    assert isinstance(a, PromptSource) and isinstance(b, PromptSource) and isinstance(c, PromptSource)
    assert a.content.content_hash == b.content.content_hash != c.content.content_hash


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("---\nversion: 1.2\n---\nx\n", ConfigIssue("prompts/p.md", 2, "version", "")),
        ("---\nvariables: [a]\nowner: [1]\n---\n{{ a }}\n", ConfigIssue("prompts/p.md", 3, "owner", "")),
        ("---\ncolour: red\n---\nx\n", ConfigIssue("prompts/p.md", 2, "colour", "")),
        ("---\nvariables: [a]\n---\nHello\n", ConfigIssue("prompts/p.md", 2, "variables", "")),
        ("---\nowner: x\n", ConfigIssue("prompts/p.md", 1, "", "")),
        ("---\nowner: x\n---\n\n", ConfigIssue("prompts/p.md", 4, "", "")),
    ],
)
def test_bad_prompt_files_name_file_line_and_field(text: str, expected: ConfigIssue) -> None:
    found = parse_prompt(text, "prompts/p.md", "p")
    assert isinstance(found, list) and len(found) == 1
    (issue,) = found
    assert (issue.file, issue.line, issue.field) == (expected.file, expected.line, expected.field), issue
    assert issue.message
