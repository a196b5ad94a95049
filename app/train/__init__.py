"""Supervised fine-tuning: tokenised and masked examples, the learning-rate schedule, the training loop
and its checkpoints.
"""
