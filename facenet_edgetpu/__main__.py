"""`python -m facenet_edgetpu <stage> [options]`: the command of every stage in dvc.yaml, and
`python -m facenet_edgetpu toolchain` (core/entry.py says what happens)."""
import sys

from facenet_edgetpu.core.entry import bug_guard, main

if __name__ == "__main__":
    sys.exit(bug_guard(main))
