"""The pipeline's stages, one module each; `python -m stages <stage>` runs one of them."""
