"""Scripts from files: Python scripts (in-process and in the subprocess fake) and their errors."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from keel.errors import ConfigError
from keel.testing.fake_llm import FunctionScript, RuleScript, load_script, start_fake_llm_process
from keel.testing.project_fake import project_script

INBOX = Path(__file__).resolve().parents[2] / "examples" / "inbox"


def test_python_and_rules_files_load(tmp_path: Path) -> None:
    rules = tmp_path / "rules.yaml"
    rules.write_text("rules:\n  - reply: {text: hi}\n")
    assert isinstance(load_script(rules), RuleScript)
    assert isinstance(load_script(INBOX / "fake_llm.py"), FunctionScript)
    assert isinstance(project_script(INBOX), FunctionScript)


@pytest.mark.parametrize(
    ("source", "message"),
    [
        ("raise RuntimeError('broken on purpose')\n", "importing it failed: RuntimeError: broken on purpose"),
        ("def other(request):\n    return None\n", "no function 'script' in this file"),
        ("def script(:\n", "importing it failed: SyntaxError"),
    ],
)
def test_python_script_errors_name_the_file(tmp_path: Path, source: str, message: str) -> None:
    path = tmp_path / "fake_llm.py"
    path.write_text(source)
    with pytest.raises(ConfigError) as error:
        load_script(path)
    [issue] = error.value.issues
    assert issue.file == str(path)
    assert message in issue.message


def test_python_script_runs_in_the_subprocess_fake() -> None:
    email = {"from": "ada@example.com", "subject": "Hi", "body": "Where is my order?"}
    with start_fake_llm_process(script=str(INBOX / "fake_llm.py")) as fake:
        response = httpx.post(
            f"{fake.base_url}/chat/completions",
            json={
                "model": "fake-inbox",
                "messages": [{"role": "user", "content": json.dumps(email)}],
                "tools": [{"type": "function", "function": {"name": "lookup_customer", "parameters": {}}}],
            },
            timeout=10,
        )
    assert response.status_code == 200
    [call] = response.json()["choices"][0]["message"]["tool_calls"]
    assert call["function"]["name"] == "lookup_customer"
    assert json.loads(call["function"]["arguments"]) == {"email": "ada@example.com"}
