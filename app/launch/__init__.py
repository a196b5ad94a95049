"""Starting stages: spec to stage arguments in a run directory, Slurm job arrays, resource plans,
doctor checks.
"""
