"""The one error type of the publishing commands: something the user can fix, said in one line."""
from __future__ import annotations

from facenet_edgetpu.core.errors import PipelineError


class PublishError(PipelineError):
    """A missing remote, refused credentials, a damaged bundle, ...; the message is one line."""


def one_line(text: object) -> str:
    """`text` with its whitespace (newlines included) collapsed, for one-line messages."""
    return " ".join(str(text).split())
