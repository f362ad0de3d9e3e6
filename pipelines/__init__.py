"""Training, evaluation and export pipelines for the task models."""
