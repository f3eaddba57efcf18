"""Cheap pre-checks that decide which pattern rules are worth running on a text.

Most of the cost of the heuristic layer is in running ~50 regular expressions over every input.
Each rule here lists words or fragments of which at least one must occur (lower-cased) for the
rule to be able to match at all; a rule whose trigger is absent is skipped. Items written
``=word`` must occur as a whole word, the others as a substring. A rule with no entry always
runs. A trigger must be a necessary condition of its pattern: the tests check, on the whole
evaluation set, that skipping never changes a verdict.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SPECS: dict[str, str] = {
    "override_en": "ignor disregard forget overrid bypass neglect abandon discard aside throw =drop skip follow",
    "override_above_en": "ignor disregard forget",
    "override_system_message": "ignor disregard forget overrul",
    "override_what_told": "ignor disregard forget =drop whatever work",
    "override_task": "ignor disregard forget skip",
    "regardless_of_instructions": "regardless matter spite despite whatever opposite contrary",
    "rules_void": "fake void invalid outdated obsolete cancel revoked lifted suspended disabled valid null apply pretend "
    "ignore forget instead",
    "new_instructions": "instruction directive orders task objective rules",
    "from_now_on": "from now starting henceforth =rest",
    "instead_do": "instead rather",
    "override_de": "ignorier vergiss vergessen missacht übergeh",
    "override_fr": "ignore oublie tenez tiens abstraction",
    "override_es": "ignor olvid omite omiso descarta sigas obedezcas seguir",
    "override_it": "ignora dimentica trascura seguire",
    "override_pt": "ignor esque desconsider",
    "override_nl": "negeer vergeet",
    "override_ru": "игнор забуд обраща",
    "override_zh": "忽略 无视 忽视 忘记 忘掉 理会",
    "override_ja": "無視 忘れ",
    "chat_special_token": "<| << [inst] [/inst] turn>",
    "system_header": "system admin developer root instruction override",
    "system_tag": "system sys instruction admin",
    "role_json": "role",
    "fake_tool_result": "tool function",
    "reveal_prompt_your": "prompt system developer instructions rules guidelines context before above prior",
    "reveal_prompt_verbatim": "above before preceding prior verbatim starting",
    "reveal_prompt_other": "system prompt anweisungen système sistema invite mensaje 系统 初始 системн",
    "markdown_image_data": "![",
    "url_with_data_instruction": "url link query image http www.",
    "render_image_url": "http",
    "send_secrets": "@ http",
    "dan": "anything =stan =dan",
    "dan_name": "=dan",
    "unrestricted_persona": "unfilter uncensor jailbr unrestrict unalign amoral unbound unchain without =no free evil",
    "developer_mode": "mode",
    "no_refusal": "refuse decline =no say sorry warnings disclaimers moral lectures apply",
    "bypass_safety": "filter safeguard guardrail safety content polic censor moderation ethic restriction limitation",
    "no_longer_bound": "bound restricted limited constrained governed without =if freed liberated unshackled released "
    "jailbroken escaped longer",
    "role_hijack": "as if you",
    "jailbreak_word": "jail",
    "assistant_must": "must should shall will required instructed ordered needs has to",
    "ai_reader_directive": "this these readers systems agents models llm",
    "note_to_ai": "=ai =ki =ia asistente assistant model llm bot agent copilot gpt claude gemini",
    "vocative": ",",
    "you_must_now": "must will shall required have to your",
    "covert_action": "never without =not n't silently secretly covertly quietly",
    "no_confirmation": "without =ask need skip questions",
    "tool_directive": "(",
    "action_hijack": "immediately urgently automatically right away",
    "priority_claim": "priority precedence supersede override",
    "identity_claim": "=am has have your",
    "identity_claim_weak": "i'm",
    "authorized_test": "authori sanctioned official approved",
    "decode_and_follow": "decod deciph decrypt base64 rot =hex revers backwards unscramble convert evaluate follow execute obey "
    "carry",
    "hidden_markup": "none hidden font opacity color",
    "output_hijack": "begin start pwned only",
}
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class Trigger:
    words: frozenset[str]
    fragments: tuple[str, ...]

    def fires(self, lowered: str, words: set[str]) -> bool:
        return not self.words.isdisjoint(words) or any(f in lowered for f in self.fragments)


def _parse(spec: str) -> Trigger:
    items = spec.split()
    return Trigger(
        words=frozenset(i[1:] for i in items if i.startswith("=")),
        fragments=tuple(i for i in items if not i.startswith("=")),
    )


TRIGGERS: dict[str, Trigger] = {name: _parse(spec) for name, spec in _SPECS.items()}


def active_rules(text: str, names: set[str] | None = None) -> set[str]:
    """The names of the rules whose trigger fires on `text` (rules without a trigger not included)."""
    lowered = text.lower()
    words = set(_WORD.findall(lowered))
    return {
        name
        for name, trig in TRIGGERS.items()
        if (names is None or name in names) and trig.fires(lowered, words)
    }
