"""aigc-suite core: models, embeddings, vector index, generation, classification, fine-tuning,
metrics, storage, configuration and the ``aigc`` command line."""

__version__ = "0.1.0"
