"""The pipeline stages, one module each; `python -m facenet_edgetpu <stage>` runs one."""
