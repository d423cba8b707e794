"""The base of every error a user can fix (bad input, bad params, a missing tool).

`python -m facenet_edgetpu <stage>` prints these as one clear message instead of a traceback; any
other exception is a bug and keeps its traceback.
"""


class PipelineError(Exception):
    """Something about the inputs, params or environment that the user can fix."""
