"""repro: reproducible SFT and deterministic evaluation for GSM8K."""

__version__ = "0.1.0"
