"""Compare the Edge TPU compiler's operator logs of two runs: `oplog-diff A B`.

A and B may each be a compiler stdout file, an operation log (`*_edgetpu.log`), a
`compile_result.json` (real or predicted), a directory holding one of those, a DVC project's work
tree, or a git revision of the repository the command runs in, read through git and DVC without
a checkout. In a DVC project the compile result is found through its dvc.yaml: the first stage
output directory that holds one (or the one `--compile-dir` names).

Example usage:
```
oplog-diff main HEAD                          # the compile results of two commits
oplog-diff main . --fail-on-regression        # committed result against the work tree
oplog-diff old_stdout.txt models/edgetpu --markdown > comment.md
oplog-diff a_edgetpu.log b_edgetpu.log --json
python -m edgetpu_analyzer.oplog_diff HEAD~1 HEAD
```

How an argument is understood (first match wins: an existing file, an existing directory, a
git revision) and where the toolchain shown beside a result comes from (dvc.lock): see
edgetpu_analyzer.result_sources, which reads the two sides.

Exit status: 0 when the comparison was made, 1 with --fail-on-regression when B regressed
against A (see edgetpu_analyzer.diff for the exact rule), 2 for bad arguments or input.
"""
from __future__ import annotations

import argparse
import sys
from typing import List, Optional

from edgetpu_analyzer.diff import diff_results
from edgetpu_analyzer.diff_render import render_json, render_markdown, render_text
from edgetpu_analyzer.result_sources import InputError, load_side

EXIT_OK = 0
EXIT_REGRESSION = 1
EXIT_BAD_INPUT = 2

EPILOG = """examples:
  oplog-diff main HEAD                     compile results of two commits (no checkout)
  oplog-diff main . --fail-on-regression   committed result against the work tree
  oplog-diff old_stdout.txt models/edgetpu --markdown

An argument is read as an existing file, else an existing directory, else a git revision.
Regression (exit 1 with --fail-on-regression): B refused while A compiled, fewer operations
mapped to the Edge TPU, or more off-chip memory. Exit 2: bad arguments or unreadable input."""


class _HelpFormatter(argparse.ArgumentDefaultsHelpFormatter, argparse.RawDescriptionHelpFormatter):
    """Shows defaults, and keeps the line breaks of the examples in the epilog."""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="oplog-diff", description=__doc__.split("\n\n")[0], epilog=EPILOG,
        formatter_class=_HelpFormatter)
    parser.add_argument("a", metavar="A", help="the baseline: file, directory or git revision")
    parser.add_argument("b", metavar="B", help="compared with A: file, directory or git revision")
    layout = parser.add_mutually_exclusive_group()
    layout.add_argument("--markdown", action="store_true",
                        help="print Markdown tables (for a CI comment) instead of plain text")
    layout.add_argument("--json", action="store_true",
                        help="print a JSON structure with sorted keys (every row) for scripts")
    parser.add_argument("--all-rows", action="store_true",
                        help="list unchanged operator rows too (plain text and Markdown)")
    parser.add_argument("--fail-on-regression", action="store_true",
                        help="exit 1 when B regressed against A")
    parser.add_argument("--repo", default=".",
                        help="git repository in which revisions are looked up")
    parser.add_argument("--compile-dir", default=None,
                        help="compile output directory inside the repository or a work tree "
                             "(default: the first stage output in dvc.yaml that holds one)")
    return parser


def main(argv: Optional[List[str]] = None) -> int:
    args = build_parser().parse_args(argv)
    sides = []
    for name, argument in (("A", args.a), ("B", args.b)):
        try:
            sides.append(load_side(argument, args.repo, args.compile_dir))
        except InputError as error:
            print("oplog-diff: error: {}: {}".format(name, error), file=sys.stderr)
            return EXIT_BAD_INPUT
    side_a, side_b = sides

    difference = diff_results(side_a.result, side_b.result, side_a.toolchain, side_b.toolchain)
    if args.json:
        output = render_json(difference, side_a.description, side_b.description)
    elif args.markdown:
        output = render_markdown(difference, side_a.description, side_b.description,
                                 all_rows=args.all_rows)
    else:
        output = render_text(difference, side_a.description, side_b.description,
                             all_rows=args.all_rows)
    sys.stdout.write(output)
    if args.fail_on_regression and difference.regressions:
        return EXIT_REGRESSION
    return EXIT_OK


if __name__ == "__main__":
    sys.exit(main())
