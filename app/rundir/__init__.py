"""The run directory: its file names and shapes, atomic writes, the manifest (its only writer), finding
a run, the one rule for untrusted paths. Pure.
"""
