"""`python -m facenet_edgetpu.publish {push,pull,bundle,verify,comment}` (docs/sharing.md).

    push      dvc push --run-cache to the default remote, with the outputs of every cached run
    pull      dvc pull --run-cache from the default remote, every download hash-checked
    bundle    write the release bundle (model, report, metrics, compiler output, provenance)
    verify    check a bundle against its provenance statement; exit 1 naming each bad file
    comment   the pull-request comment: oplog-diff and dvc metrics diff against a base

Errors the user can fix are one line on stderr and exit 1 (2 for a bad command line).
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from facenet_edgetpu.publish import bundle, provenance
from facenet_edgetpu.publish.errors import PublishError


def _push(args) -> int:
    from facenet_edgetpu.publish import remote
    done = remote.push(args.repo)
    print("pushed to remote {!r}: {} files and run records, {} run-cache output objects".format(
        remote.default_remote(args.repo).name, done.files, done.run_outputs))
    return 0


def _pull(args) -> int:
    from facenet_edgetpu.publish import remote
    done = remote.pull(args.repo)
    print("pulled from remote {!r}: {} objects and run records fetched, every one "
          "hash-checked".format(remote.default_remote(args.repo).name, done.files))
    return 0


def _bundle(args) -> int:
    written = bundle.write_bundle(args.repo, args.out, args.archive, args.builder_id,
                                  args.invocation_id)
    print("bundle written: {}{} ({} files; {})".format(
        written.path, " and " + written.archive if written.archive else "",
        len(written.statement["subject"]),
        "PREDICTED compile result: the bundle carries the quantized model, not an Edge TPU "
        "model" if written.predicted else "Edge TPU model compiled by edgetpu_compiler"))
    return 0


def _verify(args) -> int:
    from facenet_edgetpu.publish import verify
    verdict = verify.verify(args.bundle, args.statement)
    for problem in verdict.problems:
        print("verify: {}: {}".format(args.bundle, problem), file=sys.stderr)
    if verdict.problems:
        print("verify: {}: {} file(s) changed, added or removed since the statement was "
              "written; do not use this bundle".format(args.bundle, len(verdict.problems)),
              file=sys.stderr)
        return 1
    print("verify: {}: all {} files match the provenance statement".format(
        args.bundle, verdict.checked))
    return 0


def _comment(args) -> int:
    from facenet_edgetpu.publish import comment
    body = comment.comment_body(args.base, args.head, args.repo)
    if args.out:
        from facenet_edgetpu.core import artifacts
        artifacts.write_text(args.out, body)
    else:
        sys.stdout.write(body)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m facenet_edgetpu.publish",
                                     description=__doc__.split("\n\n")[0])
    parser.add_argument("--repo", default=".", help="the repository (default: .)")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    commands.required = True
    commands.add_parser("push", help="push artifacts and run-cache to the default remote"
                        ).set_defaults(run=_push)
    commands.add_parser("pull", help="pull artifacts and run-cache from the default remote"
                        ).set_defaults(run=_pull)
    make = commands.add_parser("bundle", help="write the release bundle")
    make.add_argument("--out", default=bundle.DEFAULT_BUNDLE,
                      help="bundle folder (default: %(default)s)")
    make.add_argument("--archive", help="also write this reproducible .tar.gz of the folder")
    make.add_argument("--builder-id", default=provenance.DEFAULT_BUILDER_ID,
                      help="runDetails.builder.id, e.g. the CI workflow's URL")
    make.add_argument("--invocation-id", help="runDetails.metadata.invocationId, e.g. a CI "
                      "run's URL")
    make.set_defaults(run=_bundle)
    check = commands.add_parser("verify", help="check a bundle against its statement")
    check.add_argument("bundle", help="bundle folder or .tar.gz")
    check.add_argument("--statement", help="statement file (default: the bundle's own)")
    check.set_defaults(run=_verify)
    note = commands.add_parser("comment", help="write the pull-request comment body")
    note.add_argument("--base", required=True,
                      help="what to compare with: a git revision (e.g. origin/main)")
    note.add_argument("--head", default=".", help="the result compared (default: work tree)")
    note.add_argument("--out", help="write the body here instead of stdout")
    note.set_defaults(run=_comment)
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.run(args)
    except PublishError as error:
        print("{}: error: {}".format(args.command, error), file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
