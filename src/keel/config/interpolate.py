"""`${VAR}` / `${VAR:-default}` interpolation of environment variables in YAML string values.

Interpolation is the only way secrets enter a configuration, so a value read from the environment
is marked on its scalar (`YScalar.env_vars`) and error messages name the variable, never the value.
`$${` writes a literal `${`. Only string values are interpolated, never keys.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from keel.config.yaml_source import Loc, YMap, YNode, YScalar, YSeq, issue_at
from keel.errors import ConfigIssue

_TOKEN = re.compile(r"\$\$\{|\$\{(?P<body>[^}]*)\}|\$\{")
_BODY = re.compile(r"^(?P<name>[A-Za-z_][A-Za-z0-9_]*)(?::-(?P<default>.*))?$", re.DOTALL)


def interpolate(node: YNode, environ: Mapping[str, str], loc: Loc = ()) -> list[ConfigIssue]:
    """Replace references in every string value of `node`, in place. Returns the problems found."""
    issues: list[ConfigIssue] = []
    if isinstance(node, YMap):
        for key, entry in node.entries.items():
            issues += interpolate(entry.value, environ, (*loc, key))
    elif isinstance(node, YSeq):
        for i, item in enumerate(node.items):
            issues += interpolate(item, environ, (*loc, i))
    elif isinstance(node, YScalar) and isinstance(node.value, str) and "${" in node.value:
        value, used, problems = expand(node.value, environ)
        node.value = value
        node.env_vars = (*node.env_vars, *used)
        node.failed = node.failed or bool(problems)
        issues += [issue_at(node.pos, loc, problem) for problem in problems]
    return issues


def expand(text: str, environ: Mapping[str, str]) -> tuple[str, tuple[str, ...], list[str]]:
    """Expand one string. Returns (result, variables read from the environment, problems)."""
    used: list[str] = []
    problems: list[str] = []

    def replace(match: re.Match[str]) -> str:
        token = match.group(0)
        if token == "$${":
            return "${"
        body = match.group("body")
        if body is None:
            problems.append("unterminated '${' (write ${NAME} or ${NAME:-default}; $${ for a literal ${)")
            return token
        parsed = _BODY.match(body)
        if parsed is None:
            problems.append(
                f"invalid variable reference '{token}' (write ${{NAME}} or ${{NAME:-default}}, "
                "NAME made of letters, digits and _; $${ for a literal ${)"
            )
            return token
        name, default = parsed.group("name"), parsed.group("default")
        value = environ.get(name)
        if default is not None:
            if value:  # like the shell's ${NAME:-default}: empty counts as unset
                used.append(name)
                return value
            return default
        if value is None:
            problems.append(
                f"environment variable '{name}' is not set (set it, or write ${{{name}:-default}} for a default)"
            )
            return ""
        used.append(name)
        return value

    result = _TOKEN.sub(replace, text)
    return result, tuple(dict.fromkeys(used)), problems
