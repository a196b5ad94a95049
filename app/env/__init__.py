"""The environment a stage runs in: fingerprint, package versions and lock pins, lockfiles and their checks,
the NVIDIA driver floor, numeric determinism settings.
"""
