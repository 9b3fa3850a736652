"""HTTP inference: a Litestar app serving the promoted model bundles."""
