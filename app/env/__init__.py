"""The environment a stage runs in: fingerprint, lockfiles and their checks, the NVIDIA driver floor,
numeric determinism settings.
"""
