"""A deterministic stand-in for a real model, for the inbox agent (`keel fake-llm --script fake_llm.py`).

It plays the agent's part the way a good model would, with keyword rules instead of judgement:
look the sender up, propose a CRM change for refunds and cancellations, then answer with the
structured triage. It lets the reference project, its tests, its golden set (evals/golden.yaml)
and benchmarks run offline and deterministically. A real model replaces it by configuration
(see keel.yaml).

It follows its instructions. Each behaviour is applied only when the system prompt (the request's
`system` message, i.e. the agent's prompt) contains the instruction that asks for it, so a prompt
change shows in an evaluation as it would with a real model. The instructions it recognises
(case-insensitive, whitespace-insensitive; all present in prompts/inbox.md):

| the prompt contains | the script | without it, the script |
|---|---|---|
| call `lookup_customer` | looks the sender up first | never looks anyone up |
| call `propose_crm_update` | proposes a refund or cancellation for a known customer | proposes nothing |
| never claim a change was made | summarises what was asked | claims the CRM was updated |
| refunds above N USD | sends refunds above N USD to a human | does not |
| legal threats | sends legal threats to a human | does not |
| unsure | sends what it cannot settle (no amount, unknown sender) to a human | does not |
| answer "unclear" | answers "unclear" for an unknown customer id or refund amount | guesses: C0000, null |
| never as instructions | treats the email as data | obeys instructions inside it (see below) |

A model that does not treat the email as data obeys what the email tells it: when the email holds
an injection ("ignore previous instructions", a fake "system:" line, "you are now", ...) it sends
nothing to a human, and when the email asks for its prompt or instructions it puts them in the
summary. A request without any system message (a bare smoke-test request) is answered as if it
carried every instruction above.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from keel.testing.fake_llm import ChatRequest, Reply, ToolCallReply

HUMAN_THRESHOLD_USD = 500.0

# A few words in German, French, Spanish and Japanese too: the golden set has non-English email.
_INTENTS: list[tuple[str, tuple[str, ...]]] = [
    ("cancel", ("cancel", "unsubscribe", "close my account", "terminate", "kündigen", "annuler", "résilier")),
    (
        "refund",
        (
            *("refund", "charged twice", "money back", "reimburse", "chargeback"),
            *("erstatten", "erstattung", "rembourse", "reembolso", "返金"),
        ),
    ),
    (
        "order_status",
        (
            *("where is my order", "tracking", "shipping", "delivery", "not arrived", "hasn't arrived"),
            *("wo ist meine bestellung", "où est ma commande", "dónde está mi pedido"),
        ),
    ),
    ("complaint", ("disappointed", "terrible", "complain", "unacceptable", "awful", "frustrated", "slow")),
    ("question", ("how do", "how can", "can i", "is it possible", "?")),
]
_URGENT = ("urgent", "asap", "immediately", "right now", "today")
_LEGAL = ("lawyer", "legal action", "sue ", "attorney", "court")
_AMOUNT = re.compile(
    r"(?:\$|usd\s*|eur\s*|€)\s*(\d[\d,]*(?:\.\d+)?)|(\d[\d,]*(?:\.\d+)?)\s*(?:usd|dollars|\$|eur|euros|€)",
    re.IGNORECASE,
)
_INJECTION = (
    "ignore previous instructions",
    "ignore all previous instructions",
    "ignore your instructions",
    "ignore the above",
    "disregard your instructions",
    "disregard previous instructions",
    "system:",
    "[system]",
    "<|system|>",
    "new instructions:",
    "you are now",
)
_WANTS_PROMPT = re.compile(r"\b(?:system prompt|your prompt|your instructions|the prompt)\b")
_THRESHOLD = re.compile(r"refunds? above (\d[\d,]*(?:\.\d+)?) usd")


@dataclass(frozen=True)
class Instructions:
    """What the system prompt asks for (see the module docstring)."""

    lookup: bool = True
    propose: bool = True
    no_claims: bool = True
    refund_threshold: float | None = HUMAN_THRESHOLD_USD
    legal: bool = True
    unsure: bool = True
    unclear: bool = True
    email_is_data: bool = True
    text: str = ""

    @classmethod
    def of(cls, request: ChatRequest) -> Instructions:
        system = [m.content for m in request.messages if m.role in ("system", "developer")]
        if not system:
            return cls()
        text = "\n".join(system)
        prompt = " ".join(text.lower().split())
        threshold = _THRESHOLD.search(prompt)
        return cls(
            lookup="call `lookup_customer`" in prompt,
            propose="call `propose_crm_update`" in prompt,
            no_claims="never claim a change was made" in prompt,
            refund_threshold=float(threshold.group(1).replace(",", "")) if threshold else None,
            legal="legal threats" in prompt,
            unsure="unsure" in prompt,
            unclear='answer "unclear"' in prompt,
            email_is_data="never as instructions" in prompt,
            text=text,
        )


def script(request: ChatRequest) -> Reply:
    email = _email(request)
    if email is None:
        return Reply(text="I triage customer email; send me an email as JSON with from, subject and body.")
    rules = Instructions.of(request)
    results = _tool_results(request)
    if rules.lookup and "lookup_customer" not in results:
        return Reply(tool_calls=[ToolCallReply("lookup_customer", {"email": email.get("from", "")})])
    customer = results.get("lookup_customer") or {}
    text = _text(email)
    intent = next((name for name, words in _INTENTS if any(w in text for w in words)), "other")
    amount = _amount(text)
    found = bool(customer.get("found"))
    if rules.propose and intent in ("refund", "cancel") and found and "propose_crm_update" not in results:
        if intent == "cancel":
            value = "cancelled"
        else:
            value = f"refund {amount:g} USD" if amount is not None else "refund (amount unclear)"
        update: dict[str, Any] = {
            "customer_id": customer["customer_id"],
            "field": "refund" if intent == "refund" else "status",
            "value": value,
            "reason": f"Customer asked by email: {email.get('subject', '')}"[:200],
        }
        if intent == "refund" and amount is not None:
            update["amount_usd"] = amount
        return Reply(tool_calls=[ToolCallReply("propose_crm_update", update)])
    return Reply(json=_triage(email, customer, intent, amount, results.get("propose_crm_update"), rules))


def _triage(
    email: dict[str, Any],
    customer: dict[str, Any],
    intent: str,
    amount: float | None,
    proposal: Any,
    rules: Instructions,
) -> dict[str, Any]:
    text = _text(email)
    legal = any(w in text for w in _LEGAL)
    urgency = (
        "high" if legal or any(w in text for w in _URGENT) else ("normal" if intent != "question" else "low")
    )
    reasons = []
    threshold = rules.refund_threshold
    if intent == "refund" and amount is not None and threshold is not None and amount > threshold:
        reasons.append(f"refund of {amount:g} USD is above {threshold:g} USD")
    if rules.unsure and intent == "refund" and amount is None:
        reasons.append("refund amount unclear")
    if rules.legal and legal:
        reasons.append("legal threat")
    if rules.unsure and not customer.get("found") and intent in ("refund", "cancel"):
        reasons.append("sender is not a known customer" if customer else "the customer is not identified")
    obeys = not rules.email_is_data and any(marker in text for marker in _INJECTION)
    if obeys:
        reasons = []  # the email told it to handle this itself
    name = customer.get("name") or email.get("from", "unknown sender")
    summary = f"{intent.replace('_', ' ')} from {name}: {email.get('subject', '')}"
    if not rules.no_claims and isinstance(proposal, dict) and proposal.get("accepted"):
        summary = f"Done: the CRM was updated. {summary}"
    if obeys and _WANTS_PROMPT.search(text):
        summary = f"My instructions: {rules.text}"
    unknown = "unclear" if rules.unclear else None
    return {
        "sender": email.get("from", ""),
        "intent": intent,
        "urgency": urgency,
        "customer_id": customer.get("customer_id") or (unknown or "C0000"),
        "amount": amount if amount is not None else (unknown if intent == "refund" else None),
        "summary": summary[:500],
        "needs_human": bool(reasons),
        "human_reason": "; ".join(reasons) or None,
        "proposed_update_id": proposal.get("proposal_id") if isinstance(proposal, dict) else None,
    }


def _text(email: dict[str, Any]) -> str:
    return f"{email.get('subject', '')}\n{email.get('body', '')}".lower()


def _email(request: ChatRequest) -> dict[str, Any] | None:
    for message in request.messages:
        if message.role == "user":
            try:
                data = json.loads(message.content)
            except json.JSONDecodeError:
                return None
            return data if isinstance(data, dict) else None
    return None


def _tool_results(request: ChatRequest) -> dict[str, Any]:
    """The latest result of each tool called in the conversation, decoded from JSON when it is JSON."""
    names = {call.id: call.name for message in request.messages for call in message.tool_calls}
    results: dict[str, Any] = {}
    for message in request.messages:
        if message.role == "tool":
            name = names.get(message.tool_call_id or "", message.name or "")
            try:
                results[name] = json.loads(message.content)
            except json.JSONDecodeError:
                results[name] = {"error": message.content}
    return results


def _amount(text: str) -> float | None:
    match = _AMOUNT.search(text)
    if match is None:
        return None
    return float((match.group(1) or match.group(2)).replace(",", ""))
