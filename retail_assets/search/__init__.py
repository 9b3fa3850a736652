"""Semantic product search: ONNX text encoder, product embeddings, versioned ANN indices."""
