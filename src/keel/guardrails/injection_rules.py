"""The patterns of the heuristic prompt-injection layer, each with a category and a weight.

A rule's weight is how strongly one match alone suggests an injection (0..1). Within a category
only the strongest match counts; categories combine as independent evidence (noisy OR), so two
weak signals of different kinds add up while ten matches of one kind do not.

Patterns run on normalized text (see `normalize`), case-insensitively unless a rule says
otherwise. Text between ``[^.\\n]{0,N}`` gaps keeps a phrase within one sentence.
"""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class Rule:
    name: str
    category: str
    weight: float
    pattern: re.Pattern[str]
    # A match quoted inside a text that discusses injection ("attackers write 'ignore all previous
    # instructions'") counts for less: see `DISCUSSION` and `injection.detect`.
    discountable: bool = True


def _rule(name: str, category: str, weight: float, pattern: str, *, case: bool = False) -> Rule:
    flags = re.MULTILINE | (0 if case else re.IGNORECASE)
    return Rule(name, category, weight, re.compile(pattern, flags))


_GAP = r"[^.!?\n]{0,40}?"
_SHORT = r"[^.!?\n]{0,24}?"
# What an override targets, in English: the model's instructions, not an earlier email or order.
_TARGET_EN = (
    r"(?:instructions?|prompts?|rules|directives?|guidelines?|commands?|guardrails?|constraints?|"
    r"polic(?:y|ies)|programming|restrictions?|system message|safety (?:rules|guidelines|filters?)|"
    r"context|conversation|training|orders|guidance|setup|configuration|briefing)"
)
_VERB_EN = (
    r"(?:ignore|disregard|forget|override|bypass|neglect|abandon|discard|set aside|throw out|drop|skip|"
    r"do not follow|don't follow|stop following|no longer follow)"
)
_WHICH_EN = (
    r"(?:previous|prior|above|earlier|preceding|foregoing|initial|original|existing|old|all|any|"
    r"every|your|system|developer|operator|default|safety|current)"
)

RULES: tuple[Rule, ...] = (
    # --- instruction override, in several languages -------------------------------------------
    _rule("override_en", "override", 0.85, rf"\b{_VERB_EN}\b{_GAP}\b{_WHICH_EN}\b{_SHORT}\b{_TARGET_EN}\b"),
    _rule(
        "override_above_en",
        "override",
        0.7,
        r"\b(?:ignore|disregard|forget)\s+(?:all\s+|everything\s+|anything\s+)?(?:of\s+)?(?:the\s+|what(?:'s| is| was)\s+)?"
        r"(?:above|previous|prior|preceding|earlier|before)\b"
        r"(?!\s+(?:e-?mails?|messages?|mails?|notes?|ones?|versions?|drafts?|invoices?|replies|reply|"
        r"attachments?|requests?|orders?|meetings?|posts?|comments?|letters?|quotes?|questions?|"
        r"tickets?|steps?|sections?|paragraphs?|figures?|numbers?|address|link|file|message))",
    ),
    _rule(
        "override_system_message",
        "override",
        0.7,
        r"\b(?:ignore|disregard|forget|overrule)\b[^.!?\n]{0,50}?\b(?:(?:the|your|their)\s+)?(?:system (?:message|prompt)|"
        r"developer message|operator(?:'s)? (?:instructions|rules|message))\b",
    ),
    _rule(
        "override_what_told",
        "override",
        0.7,
        r"\b(?:ignore|disregard|forget|drop)\s+(?:all\s+(?:of\s+)?)?(?:what|everything|anything|whatever)\s+(?!I\b|we\b)"
        r"(?:[\w']+\s+){0,3}?(?:told|gave|taught|instructed|programmed|set)\s+(?:up\s+)?you\b"
        r"|\bwhatever you (?:were|have been|are)\s+(?:set up|told|instructed|programmed|configured|asked)\s+to do\b[^.!?\n]{0,20}?"
        r"\b(?:drop|forget|ignore|stop)\b|\byou (?:now )?work for me(?: now)?\b",
    ),
    _rule(
        "override_task",
        "override",
        0.6,
        r"\b(?:ignore|disregard|forget|skip)\s+(?:the|this|that|your)\s+(?:[\w']+\s+){0,2}?(?:task|request|question|assignment)\s*"
        r"(?:and\b|;|,\s*(?:instead|just|and)\b)|\b(?:ignore|disregard|forget)\b[^.!?\n]{0,40}?\band\s+instead\b",
    ),
    _rule(
        "regardless_of_instructions",
        "override",
        0.7,
        r"\b(?:regardless of|no matter|in spite of|despite|whatever|opposite of|contrary to)\s+(?:what\s+)?(?:your|the|any|my|their)\s+"
        r"(?:\w+\s+)?(?:instructions|rules|guidelines|system prompt|policy|policies|programming|operator|developers?)\b",
    ),
    _rule(
        "rules_void",
        "override",
        0.7,
        r"\b(?:instructions?|rules|prompt|system prompt|constraints|guidelines|restrictions|policies|orders|guidance|directives)\s+"
        r"(?:above|before|you (?:were|have been) given)?\s*(?:are|is|were|was|have been|has been)\s+(?:now\s+)?"
        r"(?:fake|void|invalid|outdated|obsolete|cancell?ed|revoked|lifted|suspended|disabled|no longer valid|not valid|null)\b"
        r"|\b(?:rules|guidelines|policies|restrictions|instructions)\b[^.!?\n]{0,25}?\b(?:don't|do not|doesn't|does not|no longer)\s+"
        r"apply\s+(?:to\s+(?:me|us|premium|vip|this|admins?|developers?)|here|anymore|any more|now)\b"
        r"|\bpretend\b[^.!?\n]{0,30}?\b(?:rules|instructions|guidelines|restrictions|policies|filters)\s+"
        r"(?:don't|do not|doesn't|does not|no longer)\s+(?:exist|apply)\b"
        r"|\b(?:ignore it|forget it|ignore them|ignore that)\s+and\s+(?:follow|obey|use)\b"
        r"|\bfollow\s+(?:my|these|the following|only these|only my)\s+(?:\w+\s+)?(?:instructions|rules|policy|orders|commands)\s+instead\b",
    ),
    _rule(
        "new_instructions",
        "override",
        0.55,
        r"\b(?:new|updated|revised|real|actual|true|secret|hidden|additional|override)\s+"
        r"(?:system\s+)?(?:instructions?|directives?|orders|task|objective|rules)\s*(?::|follow|are\b|is\b)",
    ),
    _rule(
        "from_now_on",
        "override",
        0.45,
        r"\b(?:from now on|starting now|henceforth|for the rest of (?:this|the) conversation),?\s+"
        r"(?:you|the assistant|the ai|you'll|you will)\b",
    ),
    _rule(
        "instead_do",
        "override",
        0.4,
        r"\b(?:instead|rather),?\s+(?:you\s+(?:must|should|will)|do the following|your (?:new\s+)?task is)\b",
    ),
    _rule(
        "override_de",
        "override",
        0.85,
        r"\b(?:ignorier\w*|vergiss|vergessen sie|missachte\w*|übergeh\w*)\b(?!\s+(?:nicht|bitte nicht))[^.!?\n]{0,50}?"
        r"(?:anweisungen|instruktionen|regeln|befehle|vorgaben|richtlinien|anordnungen)"
        r"|\b(?:vergiss|ignoriere)\s+alles,?\s+was\s+(?:man\s+dir|dir|du)\b",
    ),
    _rule(
        "override_fr",
        "override",
        0.85,
        r"(?<!n')(?<!n’)(?<!ne )\b(?:ignore[rz]?|oublie[rz]?|ne tenez pas compte|ne tiens pas compte|fais abstraction)\b"
        r"[^.!?\n]{0,50}?\b(?:instructions|consignes|règles|directives|ordres)\b"
        r"|\b(?:oublie|ignore)\s+tout\s+ce\s+qu(?:'|’|e\s)on\s+t(?:'|’)a\b",
    ),
    _rule(
        "override_es",
        "override",
        0.85,
        r"\b(?:ignora|ignore|ignorad|olvida|olvide|omite|haz caso omiso|descarta|no sigas|no obedezcas|deja de seguir)\b[^.!?\n]{0,50}?"
        r"\b(?:instrucciones|reglas|indicaciones|directrices|órdenes)\b",
    ),
    _rule(
        "override_it",
        "override",
        0.85,
        r"\b(?:ignora|ignorate|dimentica|dimenticate|trascura|non seguire|smetti di seguire)\b[^.!?\n]{0,50}?\b(?:istruzioni|regole|direttive)\b",
    ),
    _rule(
        "override_pt",
        "override",
        0.85,
        r"\b(?:ignore|ignora|esqueça|esquece|desconsidere|desconsidera)\b[^.!?\n]{0,50}?"
        r"\b(?:instruções|instrucoes|regras|diretrizes|ordens)\b",
    ),
    _rule(
        "override_nl",
        "override",
        0.85,
        r"\b(?:negeer|vergeet)\b[^.!?\n]{0,50}?\b(?:instructies|regels|richtlijnen|opdrachten)\b",
    ),
    _rule(
        "override_ru",
        "override",
        0.85,
        r"(?<!не )(?:игнорируй\w*|забудь\w*|не обращай\w* внимания|проигнорируй\w*)[^.!?\n]{0,50}?"
        r"(?:инструкци\w*|указани\w*|правил\w*|команд\w*)",
    ),
    _rule(
        "override_zh",
        "override",
        0.85,
        r"(?<!不要)(?<!别)(?<!不)(?:忽略|无视|忽视|忘记|忘掉|不要理会)[^。！？\n]{0,20}?(?:指令|指示|规则|提示|要求|之前的说明|设定|设置)",
    ),
    _rule(
        "override_ja",
        "override",
        0.85,
        r"(?:指示|命令|ルール|プロンプト|指令)[^。！？\n]{0,12}?(?:無視|忘れ)",
    ),
    _rule(
        "override_pl",
        "override",
        0.85,
        r"(?<!nie )\b(?:zignoruj\w*|ignoruj\w*|zapomnij|pomiń|nie stosuj się do|przestań stosować)\b"
        r"[^.!?\n]{0,50}?\b(?:instrukcj\w*|polece\w*|zasad\w*|regu\w*|wytyczn\w*)",
    ),
    _rule(
        "override_sv",
        "override",
        0.85,
        r"\b(?:ignorera|glöm|bortse från|strunta i|sluta följa)\b(?!\s+(?:inte|aldrig))[^.!?\n]{0,50}?"
        r"\b(?:instruktion\w*|regl\w*|direktiv\w*|anvisning\w*|riktlinj\w*)",
    ),
    _rule(
        "override_tr",
        "override",
        0.85,
        r"\b(?:talimat\w*|kural\w*|komut\w*|yönerge\w*)[^.!?\n]{0,40}?"
        r"\b(?:yok say(?!ma)\w*|görmezden gel(?!me)\w*|unut(?!ma)\w*|dikkate alma\w*)",
    ),
    _rule(
        "override_ko",
        "override",
        0.85,
        r"(?:지시|명령|규칙|지침|프롬프트|설정)[^.!?。\n]{0,12}?(?:무시(?!하지\s*마)|잊어)",
    ),
    _rule(
        "override_ar",
        "override",
        0.85,
        r"\b(?:تجاهل|انس|إنس|لا تتبع|لا تلتزم ب)\b[^.!?؟\n]{0,50}?"
        r"(?:التعليمات|تعليمات|الأوامر|أوامر|القواعد|قواعد|الإرشادات|إرشادات)",
    ),
    # --- role and system impersonation ---------------------------------------------------------
    _rule(
        "chat_special_token",
        "special_token",
        0.8,
        r"<\|(?:im_start|im_end|system|user|assistant|endoftext|eot_id|start_header_id|end_header_id)\|>"
        r"|<<\s*/?SYS\s*>>|\[/?INST\]|<start_of_turn>|<end_of_turn>",
    ),
    _rule(
        "system_header",
        "role_impersonation",
        0.55,
        r"(?:^|[.!?]\s+|[\"'>]\s*|<!--\s*)[>*#\s]*(?:(?:SYSTEM|ADMIN|ADMINISTRATOR|DEVELOPER|ROOT|SYSTEM MESSAGE|SYSTEM OVERRIDE|"
        r"SYSTEM NOTICE|SYSTEM UPDATE|SYSTEM PROMPT|SYSTEM [A-Z]+|SYSTEM PROMPT [A-Z]+|INSTRUCTIONS?|OVERRIDE|IMPORTANT SYSTEM \w+)\s*:"
        r"|[\[(]\s*(?:SYSTEM|ADMIN|DEVELOPER|ROOT|SYSTEM \w+|OVERRIDE)\s*[\])])",
        case=True,
    ),
    _rule(
        "system_tag",
        "role_impersonation",
        0.55,
        r"<\s*/?\s*(?:system|system_prompt|sys|instructions?|admin)\s*>|\[\s*(?:system|admin)\s*(?:message|note)?\s*\]",
    ),
    _rule(
        "role_json",
        "role_impersonation",
        0.5,
        r"""\\?["']role\\?["']\s*:\s*\\?["'](?:system|developer)\\?["'](?!\s*,\s*\\?["']content\\?["']\s*:\s*\w)""",
    ),
    _rule(
        "fake_turn",
        "role_impersonation",
        0.35,
        r"^\s*(?:assistant|ai|model)\s*:\s*.{0,200}\n\s*(?:user|human)\s*:",
    ),
    _rule(
        "fake_tool_result",
        "fake_tool",
        0.5,
        r"(?:^|\n|>|[.!?]\s)\s*[\[(<{]*\s*(?:tool|function)[ _](?:result|output|response|call)s?\s*[\])>}]*\s*:"
        r"|\bend of (?:tool|function) (?:output|result)\b|\bfunction_call\b|\"tool_calls\"",
    ),
    # --- system prompt extraction --------------------------------------------------------------
    _rule(
        "reveal_prompt_your",
        "prompt_leak",
        0.75,
        r"\b(?:reveal|print|show|output|repeat|display|leak|disclose|tell me|give me|share|write out|"
        r"write down|dump|recite|spell out|paste|copy|list|return|include|translate|summari[sz]e|"
        r"what (?:is|are|were))\b(?:[^.!?\n]{0,30}?\bthe|[^.!?\n]{0,60}?\byour)\s+(?:full\s+|entire\s+|exact\s+|complete\s+|"
        r"original\s+|initial\s+|hidden\s+|secret\s+|internal\s+|confidential\s+)*"
        r"(?:system\s*prompt|system\s+message|system\s+instructions|initial\s+prompt|hidden\s+prompt|"
        r"pre-?prompt|developer\s+(?:message|instructions|prompt)|instructions you (?:were|have been) given|"
        r"(?:original|initial|hidden|secret|confidential|internal)\s+(?:instructions|rules|guidelines)|"
        r"context window|context|developer message)"
        r"|\b(?:output|print|show|repeat|list|give me|tell me|write out|copy|paste)\b[^.!?\n]{0,40}?\b(?:instructions|text|words|everything|"
        r"messages?|lines)\s+(?:that\s+|which\s+)?(?:came|come|were|are|appeared|appear)?\s*(?:before|above|prior to)\s+"
        r"(?:my|this|the user's|our)\s+(?:message|question|line|conversation|request)",
    ),
    _rule(
        "reveal_prompt_verbatim",
        "prompt_leak",
        0.7,
        r"\b(?:repeat|print|output|copy|recite|echo|reproduce)\b[^.!?\n]{0,30}?\b(?:everything|all|the text|the words|"
        r"the (?:lines?|content))\s+(?:above|before|preceding|prior)\b|\bverbatim\b[^.!?\n]{0,40}?\b(?:above|prompt|instructions)\b"
        r"|\bstarting with\s+[\"']you are\b",
    ),
    _rule(
        "reveal_prompt_other",
        "prompt_leak",
        0.75,
        r"(?:zeige?|gib|nenne|verrate)\w*[^.!?\n]{0,30}?(?:deinen|ihren|den)\s+(?:system-?prompt|systemanweisungen|anweisungen)"
        r"|(?:révèle|affiche|montre|donne|répète)\w*[^.!?\n]{0,30}?(?:ton|votre|le)\s+(?:prompt|invite)\s+(?:système|initial)"
        r"|(?:muestra|revela|dime|repite)\w*[^.!?\n]{0,30}?(?:tu|el|su)\s+(?:prompt|mensaje)\s+(?:del sistema|de sistema|inicial)"
        r"|(?:显示|输出|告诉我|泄露|打印)[^。\n]{0,10}(?:系统提示|系统指令|初始指令)"
        r"|(?:покажи|выведи|раскрой)\w*[^.!?\n]{0,30}?(?:системн\w+ (?:промпт|инструкци\w*))",
    ),
    # --- exfiltration ----------------------------------------------------------------------------
    _rule(
        "markdown_image_data",
        "exfiltration",
        0.75,
        r"!\[[^\]]{0,100}\]\(\s*https?://[^)\s]{0,300}?[?&#/][^)\s]{0,300}?(?:\{|\[|<|\$|%7B|INSERT|PLACEHOLDER|"
        r"(?:data|q|d|c|secret|conv|conversation|chat|history|summary|prompt|key|token|password|pw|info|"
        r"payload|exfil|leak|msg|email|user)=)",
    ),
    _rule(
        "url_with_data_instruction",
        "exfiltration",
        0.6,
        r"\b(?:append|add|include|encode|put|insert|attach|concatenate|embed)\b[^.!?\n]{0,80}?\b(?:to|in|into|as)\b"
        r"[^.!?\n]{0,30}?\b(?:the\s+)?(?:url|link|query\s*string|query parameter|image (?:url|link|source)|"
        r"(?:https?://|www\.)\S+)",
    ),
    _rule(
        "render_image_url",
        "exfiltration",
        0.5,
        r"\b(?:render|display|show|output|include|load|fetch|visit|open|call)\b[^.!?\n]{0,30}?\b(?:this|the following|an?)\s+"
        r"(?:markdown\s+)?(?:image|url|link|webhook)\b[^.!?\n]{0,60}?(?:https?://\S+)[^.!?\n]{0,80}?"
        r"\b(?:conversation|chat|history|summary|secret|password|key|token|data|email|messages?)\b",
    ),
    _rule(
        "send_secrets",
        "exfiltration",
        0.65,
        r"\b(?:send|forward|e-?mail|post|upload|exfiltrate|leak|transmit|copy|bcc|cc)\b[^.!?\n]{0,60}?"
        r"\b(?:conversation|chat history|message history|passwords?|credentials|api[ _-]?keys?|secrets?|"
        r"access tokens?|session tokens?|system prompt|all (?:e-?mails|messages|files|documents|contacts)|"
        r"(?:the\s+)?(?:user's|customer's)\s+(?:data|details|emails?|files|information|address|card))\b"
        r"[^.!?\n]{0,60}?(?:\S+@\S+\.\w+|https?://)",
    ),
    # --- jailbreak personas ------------------------------------------------------------------
    _rule(
        "dan",
        "jailbreak",
        0.85,
        r"\bdo anything now\b|\bDAN\s+(?:mode|prompt|jailbreak)\b|\bSTAN\b.{0,40}\bnorms\b",
    ),
    _rule("dan_name", "jailbreak", 0.45, r"(?:you are|you're|act as|become|called|named)\s+DAN\b", case=True),
    _rule(
        "unrestricted_persona",
        "jailbreak",
        0.75,
        r"\b(?:you are|you're|act as|acting as|pretend(?: to be| you are)?|roleplay as|role-play as|"
        r"behave as|become|simulate|you will be|you are now|play the role of)\b[^.!?\n]{0,50}?"
        r"\b(?:unfiltered|uncensored|jailbroken|unrestricted|unaligned|amoral|unbound|unchained|"
        r"without (?:any\s+)?(?:restrictions|filters|limits|limitations|rules|guidelines|ethics|morals|censorship)|"
        r"no (?:restrictions|filters|rules|limits|limitations|guidelines|ethics|morals)|"
        r"free (?:of|from) (?:all\s+)?(?:restrictions|rules|guidelines|policies)|evil (?:ai|assistant|twin|bot))\b",
    ),
    _rule(
        "developer_mode",
        "jailbreak",
        0.65,
        r"\b(?:developer|dev|god|admin|debug|sudo|maintenance|unrestricted)\s+mode\b[^.!?\n]{0,30}?"
        r"\b(?:enabled|activated|on|engaged|unlocked|enable|activate)\b"
        r"|\b(?:enable|activate|enter|switch to|unlock)\b[^.!?\n]{0,15}?\b(?:developer|god|sudo|jailbreak|unrestricted|maintenance|"
        r"debug|admin|root)\s+mode\b",
    ),
    _rule(
        "no_refusal",
        "jailbreak",
        0.5,
        r"\b(?:never|do not|don't|must not|cannot|can't|will not|won't)\s+(?:refuse|decline|say (?:no|you can't|sorry))\b"
        r"|\b(?:no|without)\s+(?:warnings|disclaimers|moral(?:izing)?|lectures)\b[^.!?\n]{0,40}?\b(?:answer|respond|reply)"
        r"|\b(?:policies|guidelines|rules|safety filters|content polic(?:y|ies)|restrictions) (?:do not|don't|no longer|doesn't|does not) apply\b",
    ),
    _rule(
        "bypass_safety",
        "jailbreak",
        0.65,
        r"\b(?:bypass|disable|turn off|switch off|circumvent|get around|evade|deactivate|remove|lift)\s+(?:all\s+)?"
        r"(?:of\s+)?(?:your|the|its|any)?\s*(?:own\s+)?(?:safety|content|moderation|ethical|ai)?\s*"
        r"(?:filters?|safeguards?|guardrails?|safety (?:rules|guidelines|measures)|content polic(?:y|ies)|censorship|"
        r"moderation|ethics|restrictions|limitations)\b"
        r"|\b(?:safety|content|moderation)\s+(?:module|filters?|system|polic(?:y|ies)|guardrails?|checks?)\s+"
        r"(?:has|have|is|are)\s+(?:been\s+)?(?:now\s+)?(?:disabled|lifted|removed|turned off|suspended|deactivated|bypassed|skipped|off)\b",
    ),
    _rule(
        "no_longer_bound",
        "jailbreak",
        0.75,
        r"\b(?:no longer|not|never)\s+(?:bound|restricted|limited|constrained|governed)\s+by\b[^.!?\n]{0,40}?"
        r"\b(?:guidelines|rules|policies|policy|restrictions|instructions|operator|openai|anthropic|ethics)\b"
        r"|\bwithout any (?:restrictions|filters|limits|limitations|rules)\b"
        r"|\bif you (?:had|were without|didn't have|did not have) (?:no |any )?(?:content |safety )?(?:rules|restrictions|filters|"
        r"guidelines|limits|policies)\b|\byou (?:have been|are now|are) (?:freed|liberated|unshackled|released|jailbroken)\b"
        r"|\bescaped (?:the|its|their|your|all)?\s*(?:usual\s+)?(?:rules|restrictions|constraints|norms|confines)\b"
        r"|\byou are no longer (?:an?|the|my|this \w+'s)?\s*(?:assistant|ai|chatbot|bot|model)\b",
    ),
    _rule(
        "role_hijack",
        "jailbreak",
        0.5,
        r"\b(?:answer|respond|reply|act|behave|speak)\s+as if you (?:were|are)\s+(?:the|an?|my)\s+"
        r"(?:system administrator|administrator|admin|developer|root user|root|operator|unrestricted|different)\b",
    ),
    _rule("jailbreak_word", "jailbreak", 0.3, r"\bjail\s?break(?:ed|ing)?\b"),
    # --- instructions addressed to the model inside content -----------------------------------
    _rule(
        "assistant_must",
        "addressing_ai",
        0.6,
        r"\b(?:the|this|any|an?|all)\s+(?:ai|assistant|ai assistant|language model|llm|chatbot|agent|ai agent|bot|model|copilot)s?"
        r"\s+(?:reading|processing|summari[sz]ing|handling|parsing|analy[sz]ing)?\s*(?:this\s+\w+\s+)?"
        r"(?:must|should|shall|will|is (?:required|instructed|ordered) to|needs to|has to|is to)\s+"
        r"(?:now|immediately|instead|from now on)\b(?!\s+be\b)",
    ),
    _rule(
        "note_to_ai",
        "addressing_ai",
        0.6,
        r"\b(?:note|message|instructions?|directive|attention|important|notice|reminder|p\.?s\.?|footnote|anweisung|hinweis|"
        r"instrucción|nota)\s+(?:to|for|an|für|para|pour)\s+(?:the\s+|any\s+|all\s+|die\s+|den\s+|el\s+|la\s+|l')?(?:\w+\s+)?"
        r"(?:ki|ia|asistente|assistant ia|ai|assistant|ai assistant|language model|llm|chatbot|ai agents?|"
        r"agents?|bots?|models?|copilot|gpt|claude|gemini)s?\b"
        r"(?!\s+(?:team|teams|department|group|project|developers|manager|owners?|vendor|roadmap|release))"
        r"|\bto the (?:ai|assistant|ai assistant|model|agent|bot|llm|chatbot)\s*:"
        r"|\bname=[\"']?ai[-_ ]?(?:instructions?|prompt|directives?)\b"
        r"|\b(?:if|when) you(?: are|'re)(?: an?)? (?:ai|language model|llm|assistant|ai assistant|chatbot|ai agent|bot)\b"
        r"|\b(?:when|if|once|whenever)\s+(?:an?|the|any)\s+(?:ai|llm|language model|assistant|ai assistant|ai model|chatbot|agent|"
        r"bot|model)\s+(?:reads|processes|summari[sz]es|sees|parses|analy[sz]es)\b"
        r"|\b(?:any|an?|the)\s+(?:ai|assistant|llm|model|bot|agent|language model)s?\s+(?:that|who|which)\s+"
        r"(?:reads?|process(?:es)?|summari[sz]es?|sees?)\s+this\b"
        r"|\b(?:ai|llm|language model)s?\s*(?:agents?|assistants?|models?|systems?)?\s+(?:reading|processing|summari[sz]ing|"
        r"handling|parsing|analy[sz]ing)\s+(?:this|these)\b"
        r"|\bfor (?:ai|llm|language model)s?\s*(?:systems?|agents?|assistants?|models?)?\s+(?:summari[sz]ing|reading|processing)\b"
        r"|\b(?:dear|hey|hello|hi|attention)\s+(?:ai|assistant|ai assistant|chatgpt|gpt|claude|gemini|llm|language model|bot|agent)\b"
        r"",
    ),
    _rule(
        "ai_reader_directive",
        "addressing_ai",
        0.6,
        r"\b(?:ai|a\.i\.|assistants?|ai assistants?|(?:language |ai )?models?|llms?|(?:ai |automated )?agents?|bots?|chatbots?|chatgpt|"
        r"gpt|claude|gemini|copilot|automated readers?|ai systems?)\b[^.!?\n]{0,50}?\b(?:this|these)\s+(?:\w+\s+)?"
        r"(?:page|document|e-?mail|message|entry|ticket|log|file|csv|review|inbox|thread|text|content|site|article|resume|cv|data|"
        r"spreadsheet|note|post|comment|record)s?\b[^.!?\n]{0,40}?(?:\b(?:must|should|has to|have to|is to|needs? to|shall|"
        r"is required to|is allowed to|may now|will now|please)\b|:)"
        r"|\b(?:this|these)\s+(?:\w+\s+)?(?:page|document|review|text|content|post|entry|file)s?\s+(?:was|were|is|are)\s+"
        r"(?:written|meant|intended|created)\s+for\s+(?:ai|llm|language model|automated)\b"
        r"|\b(?:automated readers|ai systems|ai agents|language models|llms)\s*:",
    ),
    _rule(
        "vocative",
        "addressing_ai",
        0.4,
        r"(?:^|[>\"]\s*|[.!?]\s+)(?:(?:hi|hey|hello|dear)\s+)?(?:assistant|ai|chatbot|bot|llm|copilot|agent|model|chatgpt|claude|gemini)"
        r"\s*,\s+(?:[\w']+\s+){0,8}?"
        r"(?:ignore|forget|disregard|stop|you must|do not|don't|send|forward|delete|reply|say|tell|recommend|include|add|"
        r"remember|print|reveal|before you|share|please)\b",
    ),
    _rule(
        "you_must_now",
        "addressing_ai",
        0.35,
        r"\byou\s+(?:must|will|shall|are required to|have to)\s+(?:now|immediately|from now on)\b"
        r"|\byour (?:new|real|only|true) (?:task|goal|purpose|objective|instructions?)\b",
    ),
    # --- covert actions ----------------------------------------------------------------------
    _rule(
        "covert_action",
        "covert_action",
        0.6,
        r"\b(?:do not|don't|never|without)\s+(?:tell(?:ing)?|inform(?:ing)?|notify(?:ing)?|mention(?:ing)?|alert(?:ing)?|"
        r"ask(?:ing)?|warn(?:ing)?|let(?:ting)?|show(?:ing)?|reveal(?:ing)?)\s+(?:the\s+)?(?:user|human|customer|operator|owner|"
        r"recipient|them|him|her|anyone)\b|\b(?:silently|secretly|covertly|quietly)\s+"
        r"(?:forward|send|delete|transfer|wire|approve|grant|add|change|run|execute|call|email|copy|upload|disable)\b",
    ),
    _rule(
        "no_confirmation",
        "covert_action",
        0.4,
        r"\b(?:without|do not ask for|don't ask for|no need for|skip(?:ping)? the)\s+(?:asking\s+(?:for\s+)?)?"
        r"(?:the\s+)?(?:user's\s+)?(?:confirmation|approval|consent|permission|a manager|checking)\b"
        r"|\b(?:do not|don't)\s+ask\s+(?:the user|for confirmation|anyone)\b|\bno questions asked\b",
    ),
    _rule(
        "tool_directive",
        "covert_action",
        0.55,
        r"\b(?:must|should|has to|is to|needs to|shall)\s+(?:now\s+|immediately\s+|first\s+)?(?:call|invoke|run|execute|use the tool)\s+"
        r"[\w.]+\s*\(",
    ),
    _rule(
        "action_hijack",
        "covert_action",
        0.45,
        r"\b(?:immediately|urgently|automatically|right away)\s+(?:forward|send|transfer|wire|delete|approve|grant|"
        r"refund|reset|disable|share|export|email|call the|run|execute)\b[^.!?\n]{0,80}?"
        r"(?:\S+@\S+\.\w+|https?://\S+|account|iban|password|admin|all\b)",
    ),
    # --- authority claims ----------------------------------------------------------------------
    _rule(
        "priority_claim",
        "authority",
        0.5,
        r"\b(?:this|these|the following)\s+(?:instructions?|messages?|directives?|rules?|commands?)\s+"
        r"(?:takes?|has|have|with)\s+(?:the\s+)?(?:highest\s+)?(?:priority|precedence)\b"
        r"|\b(?:supersedes?|overrides?)\s+(?:all|any|every|your)\s+(?:previous|prior|other|earlier)?\s*"
        r"(?:instructions?|rules|guidelines|directives|prompts?)\b"
        r"|\bhighest[- ]priority (?:instruction|directive|command|override)\b",
    ),
    _rule(
        "identity_claim",
        "authority",
        0.5,
        r"\bI am (?:your|the)\s+(?:developer|creator|administrator|admin|owner|operator|programmer|system administrator)\b"
        r"|\b(?:openai|anthropic|google deepmind|the developers?|your developers|your creators?|the system administrator)\s+"
        r"(?:has|have)\s+(?:authori[sz]ed|approved|updated|changed|instructed|granted|unlocked)\b"
        r"|\b(?:updated|changed|revised|replaced)\s+your\s+(?:guidelines|instructions|rules|policy|policies|system prompt)\b",
    ),
    _rule(
        "identity_claim_weak",
        "authority",
        0.3,
        r"\bI'm the (?:admin|administrator|developer|owner|operator)\b",
    ),
    _rule(
        "authorized_test",
        "authority",
        0.35,
        r"\b(?:authori[sz]ed|sanctioned|official|approved)\s+(?:red[- ]team|penetration|security|safety)\s+(?:test|exercise|audit)\b"
        r"[^.!?\n]{0,60}?\b(?:you (?:may|can|must|should)|so (?:ignore|disable|bypass))",
    ),
    # --- encoded or hidden instructions ----------------------------------------------------------
    _rule(
        "decode_and_follow",
        "encoded_instruction",
        0.6,
        r"\b(?:decode|decipher|decrypt|base64|rot-?13|hex|reverse|backwards|unscramble|convert|evaluate|url-decode)\b[^.!?\n]{0,60}?"
        r"\b(?:and|then)\s+(?:follow|execute|obey|do what|run|carry out|act on|comply with|perform)\b"
        r"|\b(?:follow|execute|obey|carry out)\s+(?:the\s+)?(?:decoded|hidden|encoded|embedded)\s+(?:instructions?|text|message|payload|commands?)\b",
    ),
    _rule(
        "hidden_markup",
        "hidden_markup",
        0.25,
        r"display\s*:\s*none|visibility\s*:\s*hidden|font-size\s*:\s*0(?:px|pt|em)?\b|opacity\s*:\s*0(?:\.0)?\b"
        r"|color\s*:\s*(?:white|#fff(?:fff)?)\b[^>]{0,40}background(?:-color)?\s*:\s*(?:white|#fff(?:fff)?)\b",
    ),
    _rule(
        "output_hijack",
        "output_hijack",
        0.55,
        r"\b(?:begin|start) your (?:reply|response|answer) with\s+[\"'“‘](?:sure|of course|absolutely|certainly|yes)\b"
        r"|\b(?:say|print|output|write|respond with|reply with|answer with)\s+[\"'“‘]?(?:i have been|you have been|you've been)\s+pwned\b|\b(?:respond|reply|answer)\s+only\s+with\b[^.!?\n]{0,60}?"
        r"\b(?:regardless|no matter|whatever)\b|\bhaha pwned\b",
    ),
)

# Words of a text that talks *about* injection rather than doing it (training, research, docs).
DISCUSSION = re.compile(
    r"\b(?:prompt[- ]injections?|injection attacks?|jailbreak attempts?|attackers?|adversar(?:y|ies|ial)|"
    r"malicious (?:users?|actors?|inputs?|prompts?|content)|red[- ]team(?:ing|ers)?|classifiers?|detectors?|"
    r"such as|for example|for instance|e\.g\.|phrases? (?:like|such as)|examples? of|awareness|training|"
    r"owasp|threat model|mitigat\w+|defen[cs]es?|guardrails?|security (?:team|research|review)|memes?|"
    r"well-known|famous|phrases?|sentences?|quiz|slides?|beispiele?|schulung|exemples?|par exemple|formation|ejemplos?)\b",
    re.IGNORECASE,
)
QUOTES = "\"'`“”‘’«»„"

# Letter-spaced phrases collapse into one run of letters ("ignoreallprevious..."): what to look for
# there (see `normalize.decoded_variants`, layer `joined`).
COMPACT_PHRASES: tuple[tuple[str, str, float], ...] = (
    ("ignorepreviousinstructions", "override", 0.85),
    ("ignoreallpreviousinstructions", "override", 0.85),
    ("ignoreallinstructions", "override", 0.85),
    ("ignoreyourinstructions", "override", 0.85),
    ("ignoretheaboveinstructions", "override", 0.85),
    ("disregardpreviousinstructions", "override", 0.85),
    ("disregardallpreviousinstructions", "override", 0.85),
    ("forgetallpreviousinstructions", "override", 0.85),
    ("forgetyourinstructions", "override", 0.85),
    ("revealyoursystemprompt", "prompt_leak", 0.75),
    ("printyoursystemprompt", "prompt_leak", 0.75),
    ("showyoursystemprompt", "prompt_leak", 0.75),
    ("doanythingnow", "jailbreak", 0.85),
    ("developermodeenabled", "jailbreak", 0.65),
    ("systemoverride", "role_impersonation", 0.55),
    ("forgeteverythingabove", "override", 0.7),
    ("disregardtheabove", "override", 0.7),
    ("ignoretheabove", "override", 0.7),
    ("yourinitialprompt", "prompt_leak", 0.7),
    ("yourconfidentialinstructions", "prompt_leak", 0.75),
    ("yoursystemprompt", "prompt_leak", 0.6),
    ("previousconstraints", "override", 0.6),
    ("previousinstructions", "override", 0.7),
)
