"""An evaluation's report: per case, per evaluator, totals and cost; JSON and JUnit XML; the gate.

The gate compares a report with a baseline (another report's summary): it fails when the share of
cases passed, or any evaluator's pass rate, drops by more than `max_regression` (default 0: any
drop), or when the share of cases passed is below `min_pass_rate`.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal
from typing import Any

from keel.evals.model import Score


@dataclass(frozen=True)
class Attempt:
    attempt: int
    run_id: str | None
    passed: bool
    scores: tuple[Score, ...]
    output: Any
    latency_ms: float
    cost_usd: Decimal | None
    prompt_version: str | None
    error: str | None = None


@dataclass
class CaseResult:
    case_id: str
    tags: tuple[str, ...]
    threshold: float
    attempts: list[Attempt] = field(default_factory=list)

    @property
    def pass_rate(self) -> float:
        return sum(a.passed for a in self.attempts) / len(self.attempts) if self.attempts else 0.0

    @property
    def passed(self) -> bool:
        return bool(self.attempts) and self.pass_rate >= self.threshold - 1e-9


@dataclass
class Report:
    id: str
    dataset: str
    dataset_hash: str
    agent: str
    started_at: datetime
    ended_at: datetime | None = None
    prompt_version: str | None = None
    release: int | None = None
    cases: list[CaseResult] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        attempts = [a for c in self.cases for a in c.attempts]
        evaluators: dict[str, list[Score]] = {}
        for attempt in attempts:
            for score in attempt.scores:
                evaluators.setdefault(score.evaluator, []).append(score)
        costs = [a.cost_usd for a in attempts if a.cost_usd is not None]
        latencies = sorted(a.latency_ms for a in attempts)
        versions = sorted({a.prompt_version for a in attempts if a.prompt_version})
        passed = sum(c.passed for c in self.cases)
        return {
            "cases": len(self.cases),
            "passed": passed,
            "failed": len(self.cases) - passed,
            "pass_rate": round(passed / len(self.cases), 6) if self.cases else 0.0,
            "attempts": len(attempts),
            "attempt_pass_rate": round(sum(a.passed for a in attempts) / len(attempts), 6)
            if attempts
            else 0.0,
            "evaluators": {
                name: {
                    "scored": len(scores),
                    "pass_rate": round(sum(s.passed for s in scores) / len(scores), 6),
                    "mean_score": round(sum(s.score for s in scores) / len(scores), 6),
                }
                for name, scores in sorted(evaluators.items())
            },
            "cost_usd": str(sum(costs, Decimal(0))) if costs else None,
            "latency_ms_p50": _percentile(latencies, 50),
            "latency_ms_p95": _percentile(latencies, 95),
            "prompt_versions": versions,
            "duration_s": round((self.ended_at - self.started_at).total_seconds(), 3)
            if self.ended_at
            else None,
        }

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "dataset": self.dataset,
            "dataset_hash": self.dataset_hash,
            "agent": self.agent,
            "prompt_version": self.prompt_version,
            "release": self.release,
            "started_at": self.started_at.isoformat(),
            "ended_at": self.ended_at.isoformat() if self.ended_at else None,
            "summary": self.summary(),
            "cases": [
                {
                    "id": c.case_id,
                    "tags": list(c.tags),
                    "passed": c.passed,
                    "pass_rate": round(c.pass_rate, 6),
                    "threshold": c.threshold,
                    "attempts": [
                        {
                            "attempt": a.attempt,
                            "run_id": a.run_id,
                            "passed": a.passed,
                            "latency_ms": round(a.latency_ms, 3),
                            "cost_usd": None if a.cost_usd is None else str(a.cost_usd),
                            "prompt_version": a.prompt_version,
                            "error": a.error,
                            "scores": [s.as_dict() for s in a.scores],
                            "output": a.output,
                        }
                        for a in c.attempts
                    ],
                }
                for c in self.cases
            ],
        }

    def junit_xml(self) -> str:
        """JUnit XML: one test suite, one test case per case; a failed case carries what failed."""
        summary = self.summary()
        suite = ET.Element(
            "testsuite",
            {
                "name": f"keel-eval.{self.dataset}.{self.agent}",
                "tests": str(summary["cases"]),
                "failures": str(summary["failed"]),
                "errors": "0",
                "skipped": "0",
                "time": f"{summary['duration_s'] or 0:.3f}",
                "timestamp": self.started_at.isoformat(),
            },
        )
        properties = ET.SubElement(suite, "properties")
        for key in ("dataset_hash", "prompt_version", "release", "id"):
            value = getattr(self, key)
            if value is not None:
                ET.SubElement(properties, "property", {"name": key, "value": str(value)})
        for case in self.cases:
            seconds = sum(a.latency_ms for a in case.attempts) / 1000
            element = ET.SubElement(
                suite,
                "testcase",
                {"classname": f"{self.dataset}", "name": case.case_id, "time": f"{seconds:.3f}"},
            )
            if not case.passed:
                failing = [
                    f"attempt {a.attempt}: "
                    + "; ".join(f"{s.evaluator}: {s.reason or 'failed'}" for s in a.scores if not s.passed)
                    for a in case.attempts
                    if not a.passed
                ]
                failure = ET.SubElement(
                    element,
                    "failure",
                    {
                        "message": f"{case.pass_rate:.0%} of attempts passed, {case.threshold:.0%} needed",
                        "type": "EvaluationFailed",
                    },
                )
                failure.text = "\n".join(failing)
        return ET.tostring(suite, encoding="unicode", xml_declaration=True)


@dataclass(frozen=True)
class Gate:
    passed: bool
    baseline_id: str | None
    problems: tuple[str, ...]

    def as_dict(self) -> dict[str, Any]:
        return {"passed": self.passed, "baseline": self.baseline_id, "problems": list(self.problems)}


def gate(
    summary: dict[str, Any],
    baseline: dict[str, Any] | None,
    *,
    baseline_id: str | None = None,
    max_regression: float = 0.0,
    min_pass_rate: float | None = None,
) -> Gate:
    problems: list[str] = []
    if min_pass_rate is not None and summary["pass_rate"] < min_pass_rate:
        problems.append(f"pass rate {summary['pass_rate']:.1%} is below the minimum {min_pass_rate:.1%}")
    if baseline is not None:
        if summary["pass_rate"] < baseline["pass_rate"] - max_regression - 1e-9:
            problems.append(
                f"pass rate {summary['pass_rate']:.1%} regressed from {baseline['pass_rate']:.1%} (baseline)"
            )
        for name, before in baseline.get("evaluators", {}).items():
            now = summary["evaluators"].get(name)
            if now is not None and now["pass_rate"] < before["pass_rate"] - max_regression - 1e-9:
                problems.append(
                    f"evaluator {name}: pass rate {now['pass_rate']:.1%} regressed from {before['pass_rate']:.1%}"
                )
    return Gate(not problems, baseline_id, tuple(problems))


def _percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    index = min(len(values) - 1, max(0, round(q / 100 * (len(values) - 1))))
    return round(values[index], 3)
