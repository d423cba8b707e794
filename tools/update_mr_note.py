"""Keep ONE report note on a GitLab merge request: edit the note that holds the report's
marker, or create it the first time (iterative/cml#719: never a new note per push).

Used by .gitlab-ci.yml: `python tools/update_mr_note.py dist/comment.md`. Reads the GitLab
CI variables CI_API_V4_URL, CI_PROJECT_ID, CI_MERGE_REQUEST_IID and GITLAB_API_TOKEN (a
project access token with the `api` scope; CI_JOB_TOKEN cannot write notes).
"""
from __future__ import annotations

import json
import os
import sys
import urllib.parse
import urllib.request
from typing import Any, Dict, Iterable, List, Optional


def marked_note(notes: Iterable[Dict[str, Any]], marker: str) -> Optional[int]:
    """The id of the first note whose body starts with `marker`."""
    return next((note["id"] for note in notes if str(note.get("body", "")).startswith(marker)),
                None)


def _call(method: str, url: str, token: str, form: Optional[Dict[str, str]] = None) -> Any:
    data = urllib.parse.urlencode(form).encode() if form else None
    request = urllib.request.Request(url, data=data, method=method,
                                     headers={"PRIVATE-TOKEN": token})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read().decode("utf-8"))


def main(argv: List[str]) -> int:
    if len(argv) != 1:
        print("usage: update_mr_note.py COMMENT.md", file=sys.stderr)
        return 2
    missing = [name for name in ("CI_API_V4_URL", "CI_PROJECT_ID", "CI_MERGE_REQUEST_IID",
                                 "GITLAB_API_TOKEN") if not os.environ.get(name)]
    if missing:
        print("update_mr_note: set {} (GitLab CI/CD variables)".format(", ".join(missing)),
              file=sys.stderr)
        return 1
    with open(argv[0], "r", encoding="utf-8") as handle:
        body = handle.read()
    marker = body.splitlines()[0]
    notes_url = "{}/projects/{}/merge_requests/{}/notes".format(
        os.environ["CI_API_V4_URL"], os.environ["CI_PROJECT_ID"],
        os.environ["CI_MERGE_REQUEST_IID"])
    token = os.environ["GITLAB_API_TOKEN"]
    notes: List[Dict[str, Any]] = []
    page = 1
    while True:
        batch = _call("GET", "{}?per_page=100&page={}".format(notes_url, page), token)
        notes += batch
        if len(batch) < 100:
            break
        page += 1
    note = marked_note(notes, marker)
    if note is None:
        _call("POST", notes_url, token, {"body": body})
    else:
        _call("PUT", "{}/{}".format(notes_url, note), token, {"body": body})
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
