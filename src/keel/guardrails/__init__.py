"""Guardrails: input, output and action checks for agents."""
