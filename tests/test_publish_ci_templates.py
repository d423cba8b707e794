"""The CI templates users copy, checked with real validators (they cannot run here):
actionlint for the GitHub workflow, check-jsonschema's built-in (vendored, offline) GitHub
workflow and GitLab CI schemas for both."""
from __future__ import annotations

import os
import subprocess
import sys

import pytest
import yaml

from facenet_edgetpu.publish.comment import MARKER
from tests.publish_repo import REPO

sys.path.insert(0, os.path.join(REPO, "tools"))
import update_mr_note  # noqa: E402  (tools/ is not a package)

WORKFLOW = os.path.join(REPO, ".github", "workflows", "pipeline.yml")
GITLAB = os.path.join(REPO, ".gitlab-ci.yml")
BIN = os.path.dirname(sys.executable)


def offline_env():
    """No network: a proxy on a closed port makes any download fail instead of happening."""
    env = dict(os.environ)
    for name in ("HTTP_PROXY", "HTTPS_PROXY", "http_proxy", "https_proxy"):
        env[name] = "http://127.0.0.1:9"
    return env


def validate(command):
    return subprocess.run(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          universal_newlines=True, env=offline_env())


def actionlint(path):
    return validate([os.path.join(BIN, "actionlint"), "-no-color", path])


def schema(name, path):
    return validate([os.path.join(BIN, "check-jsonschema"), "--builtin-schema", name, path])


def load(path):
    with open(path, "r", encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def test_the_github_workflow_passes_actionlint():
    done = actionlint(WORKFLOW)
    assert done.returncode == 0 and done.stdout == "", done.stdout


def test_the_templates_match_the_builtin_schemas_offline():
    for name, path in (("vendor.github-workflows", WORKFLOW), ("vendor.gitlab-ci", GITLAB)):
        done = schema(name, path)
        assert done.returncode == 0 and "ok -- validation done" in done.stdout, done.stdout


def test_the_validators_reject_broken_templates(tmp_path):
    workflow = load(WORKFLOW)
    del workflow["jobs"]["reproduce"]["runs-on"]
    broken = str(tmp_path / "broken.yml")
    with open(broken, "w", encoding="utf-8") as handle:
        yaml.safe_dump(workflow, handle)
    assert actionlint(broken).returncode == 1
    assert schema("vendor.github-workflows", broken).returncode == 1
    gitlab = load(GITLAB)
    gitlab["reproduce"]["script"] = {"not": "a list"}
    with open(broken, "w", encoding="utf-8") as handle:
        yaml.safe_dump(gitlab, handle)
    assert schema("vendor.gitlab-ci", broken).returncode == 1


def step_text(workflow):
    return "\n".join(yaml.safe_dump(step) for step in workflow["jobs"]["reproduce"]["steps"])


def test_the_github_workflow_pulls_reproduces_publishes_comments_and_releases():
    workflow = load(WORKFLOW)
    triggers = workflow[True] if True in workflow else workflow["on"]   # YAML 1.1 reads on: as True
    assert "pull_request" in triggers and triggers["push"]["tags"]
    steps = step_text(workflow)
    order = [steps.index(text) for text in ("make pull", "dvc repro --pull", "make publish",
                                            "publish verify", "upload-artifact",
                                            "publish comment", "--method PATCH",
                                            "gh release upload")]
    assert order == sorted(order)
    edit = next(step["run"] for step in workflow["jobs"]["reproduce"]["steps"]
                if "--method PATCH" in step.get("run", ""))
    assert 'marker="$(head -n 1 dist/comment.md)"' in edit and "startswith" in edit
    assert "secrets.AWS_SECRET_ACCESS_KEY" in open(WORKFLOW, encoding="utf-8").read()


def test_the_gitlab_pipeline_does_the_same():
    gitlab = load(GITLAB)
    script = "\n".join(gitlab["reproduce"]["script"])
    for text in ("make pull", "dvc repro --pull", "make publish", "publish verify",
                 "publish comment", "tools/update_mr_note.py"):
        assert text in script
    assert gitlab["reproduce"]["artifacts"]["paths"] == ["dist/facenet-edgetpu-bundle.tar.gz"]
    assert gitlab["release"]["release"]["assets"]["links"][0]["url"].endswith(
        "dist/facenet-edgetpu-bundle.tar.gz?job=reproduce")


@pytest.mark.parametrize("notes, expected", [
    ([], None),
    ([{"id": 1, "body": "LGTM"}, {"id": 7, "body": MARKER + "\nold report"},
      {"id": 9, "body": "quoting " + MARKER}], 7),
])
def test_the_gitlab_note_to_edit_is_the_one_starting_with_the_marker(notes, expected):
    assert update_mr_note.marked_note(notes, MARKER) == expected
