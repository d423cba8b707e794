"""FaceNet to Edge TPU: a reproducible DVC pipeline (`python -m facenet_edgetpu <stage>`)."""
