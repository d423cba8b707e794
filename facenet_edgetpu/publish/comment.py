"""The pull-request comment: what changed in the Edge TPU compile result and in the metrics.

The body starts with a hidden marker (MARKER). CI looks for a comment holding it and edits
that one, so a pull request has ONE comment updated in place on every push, never one per
push (iterative/cml#719). Below it: a headline (no change / regression / predicted, not
compiled), `oplog-diff --markdown` of the base against the head, and `dvc metrics diff --md`.
"""
from __future__ import annotations

import os
import subprocess
import sys
from typing import List

from edgetpu_analyzer import result_sources
from edgetpu_analyzer.diff import VERDICT_UNCHANGED, OplogDiff, diff_results
from edgetpu_analyzer.diff_render import render_markdown
from facenet_edgetpu.publish import layout
from facenet_edgetpu.publish.errors import PublishError, one_line

MARKER = "<!-- facenet-edgetpu-pipeline: pull-request report (CI edits this comment) -->"


def compile_dir(repo: str) -> str:
    """The compile stage's output directory as dvc.yaml declares it (models/edgetpu)."""
    outs = layout.stage_outs(layout.declared_pipeline(repo), layout.COMPILE_STAGE)
    return outs[0]


def headline(difference: OplogDiff) -> List[str]:
    """The first lines: regression or not, and whether the head's result is a prediction."""
    lines = []
    if difference.regressions:
        lines.append(":x: **Regression** against the base: " + "; ".join(
            finding.message for finding in difference.regressions) + ".")
    elif difference.verdict == VERDICT_UNCHANGED:
        lines.append(":white_check_mark: **No change** in the Edge TPU compile result.")
    else:
        lines.append("**{}** in the Edge TPU compile result, no regression.".format(
            difference.verdict.capitalize()))
    if difference.b.predicted:
        lines.append(":warning: **Predicted, not compiled**: no Edge TPU compiler ran for this "
                     "result. The operator table is the analyzer's prediction of what "
                     "edgetpu_compiler {} would print, and the release bundle carries the "
                     "quantized model, not an Edge TPU model.".format(
                         difference.b.compiler_version))
    return lines


def metrics_diff(repo: str, base: str) -> str:
    """`dvc metrics diff <base> --md`, or a sentence when nothing changed."""
    done = subprocess.run([sys.executable, "-m", "dvc", "metrics", "diff", base, "--md"],
                          cwd=repo, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                          universal_newlines=True)
    if done.returncode != 0:
        raise PublishError("`dvc metrics diff {} --md` failed in {}: {}".format(
            base, os.path.abspath(repo), one_line(done.stderr.strip()[-500:])))
    table = [line for line in done.stdout.splitlines() if line.strip()]
    return "\n".join(table) if len(table) > 2 else "No metric changed."   # header rows only


def comment_body(base: str, head: str = ".", repo: str = ".") -> str:
    """The comment for `head` (a work tree folder or a revision) against `base` (a revision)."""
    directory = compile_dir(repo)
    sides = []
    for label, argument in (("base", base), ("head", head)):
        if not os.path.isabs(argument) and os.path.isdir(os.path.join(repo, argument)):
            argument = os.path.normpath(os.path.join(repo, argument))
        try:
            sides.append(result_sources.load_side(argument, repo, directory))
        except result_sources.InputError as error:
            raise PublishError("the {} compile result ({}): {}".format(
                label, argument, error)) from error
    difference = diff_results(sides[0].result, sides[1].result, sides[0].toolchain,
                              sides[1].toolchain)
    lines = [MARKER, "## Edge TPU pipeline report", ""]
    for sentence in headline(difference):    # one paragraph each
        lines += [sentence, ""]
    lines.append(render_markdown(difference, sides[0].description,
                                 sides[1].description).rstrip("\n"))
    lines += ["", "### Metrics (`dvc metrics diff {}`)".format(base), "",
              metrics_diff(repo, base)]
    return "\n".join(lines) + "\n"
