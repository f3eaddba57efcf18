"""Evaluations: datasets, evaluators, the offline runner and CI gate, and online scoring.

- `keel.evals.model`: what a case, an observation of a run and a score are.
- `keel.evals.dataset`: datasets as YAML or JSONL files (and in the database), checked with file,
  line and field.
- `keel.evals.evaluators`: the built-in evaluators (exact, contains, regex, JSON Schema, fields,
  tool trajectory, latency and cost ceilings, LLM judge, custom Python).
- `keel.evals.offline`: `keel eval`: cases run concurrently through the real runtime, a report,
  the comparison with a baseline (the CI gate).
- `keel.evals.online`: a share of live runs scored in the background; feedback signals.
See docs/evals.md.
"""
