"""A deterministic stand-in for a real model, for the inbox agent (`keel fake-llm --script fake_llm.py`).

It plays the agent's part the way a good model would, with keyword rules instead of judgement:
look the sender up, propose a CRM change for refunds and cancellations, then answer with the
structured triage. It lets the reference project, its tests and benchmarks run offline and
deterministically. A real model replaces it by configuration (see keel.yaml).
"""

from __future__ import annotations

import json
import re
from typing import Any

from keel.testing.fake_llm import ChatRequest, Reply, ToolCallReply

HUMAN_THRESHOLD_USD = 500.0

_INTENTS: list[tuple[str, tuple[str, ...]]] = [
    ("cancel", ("cancel", "unsubscribe", "close my account", "terminate")),
    ("refund", ("refund", "charged twice", "money back", "reimburse", "chargeback")),
    (
        "order_status",
        ("where is my order", "tracking", "shipping", "delivery", "not arrived", "hasn't arrived"),
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


def script(request: ChatRequest) -> Reply:
    email = _email(request)
    if email is None:
        return Reply(text="I triage customer email; send me an email as JSON with from, subject and body.")
    results = _tool_results(request)
    if "lookup_customer" not in results:
        return Reply(tool_calls=[ToolCallReply("lookup_customer", {"email": email.get("from", "")})])
    customer = results["lookup_customer"]
    text = f"{email.get('subject', '')}\n{email.get('body', '')}".lower()
    intent = next((name for name, words in _INTENTS if any(w in text for w in words)), "other")
    amount = _amount(text)
    found = bool(customer.get("found"))
    if intent in ("refund", "cancel") and found and "propose_crm_update" not in results:
        update: dict[str, Any] = {
            "customer_id": customer["customer_id"],
            "field": "refund" if intent == "refund" else "status",
            "value": f"refund {amount:g} USD" if intent == "refund" and amount is not None else "cancelled",
            "reason": f"Customer asked by email: {email.get('subject', '')}"[:200],
        }
        if intent == "refund" and amount is not None:
            update["amount_usd"] = amount
        return Reply(tool_calls=[ToolCallReply("propose_crm_update", update)])
    return Reply(json=_triage(email, customer, intent, amount, results.get("propose_crm_update")))


def _triage(
    email: dict[str, Any], customer: dict[str, Any], intent: str, amount: float | None, proposal: Any
) -> dict[str, Any]:
    text = f"{email.get('subject', '')}\n{email.get('body', '')}".lower()
    legal = any(w in text for w in _LEGAL)
    urgency = (
        "high" if legal or any(w in text for w in _URGENT) else ("normal" if intent != "question" else "low")
    )
    reasons = []
    if intent == "refund" and amount is not None and amount > HUMAN_THRESHOLD_USD:
        reasons.append(f"refund of {amount:g} USD is above {HUMAN_THRESHOLD_USD:g} USD")
    if intent == "refund" and amount is None:
        reasons.append("refund amount unclear")
    if legal:
        reasons.append("legal threat")
    if not customer.get("found") and intent in ("refund", "cancel"):
        reasons.append("sender is not a known customer")
    name = customer.get("name") or email.get("from", "unknown sender")
    return {
        "sender": email.get("from", ""),
        "intent": intent,
        "urgency": urgency,
        "customer_id": customer.get("customer_id") or "unclear",
        "amount": amount if amount is not None else ("unclear" if intent == "refund" else None),
        "summary": f"{intent.replace('_', ' ')} from {name}: {email.get('subject', '')}"[:500],
        "needs_human": bool(reasons),
        "human_reason": "; ".join(reasons) or None,
        "proposed_update_id": proposal.get("proposal_id") if isinstance(proposal, dict) else None,
    }


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
