"""What a run starts from: GSM8K rows, prompt templates, model weights (local, embedded, hub), randomly
initialised models.
"""
