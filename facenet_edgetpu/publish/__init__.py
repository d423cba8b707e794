"""Sharing the pipeline's results: DVC remotes, the release bundle with provenance, the PR comment.

`python -m facenet_edgetpu.publish {push,pull,bundle,verify,comment}` (docs/sharing.md). This
package runs on the host, never inside a stage: it is not part of dvc.yaml.
"""
