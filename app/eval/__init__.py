"""Evaluation: generation (the only vLLM import), grading, metrics, regrading saved outputs."""
