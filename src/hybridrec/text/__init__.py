"""Item text to vectors: encoders and the embeddings stage of the DAG."""
