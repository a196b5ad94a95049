"""Run specs: the pydantic model, loading with one-line errors, migration, the run's identity hash, the
JSON Schema. Pure.
"""
