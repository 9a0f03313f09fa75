"""The sweep from images to embeddings: engine, prefetch, distributed runs, embedding stores and their index, saved embeddings."""
