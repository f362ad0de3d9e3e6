"""Task-independent pieces of the pipelines: data loading, training loop, export, model card."""
