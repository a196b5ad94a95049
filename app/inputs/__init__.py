"""What a run starts from: GSM8K rows and their canonical numbers, prompt templates, model weights (local,
embedded, hub) and the cache that holds them, randomly initialised models, who may turn on remote code.
"""
