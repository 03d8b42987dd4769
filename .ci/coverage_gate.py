"""Fail when line or branch coverage of the package is under the gate.

    python .ci/coverage_gate.py coverage.json [--lines 85] [--branches 75]
"""

from __future__ import annotations

import argparse
import json
import sys


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("report")
    parser.add_argument("--lines", type=float, default=85.0)
    parser.add_argument("--branches", type=float, default=75.0)
    args = parser.parse_args(argv)
    totals = json.load(open(args.report))["totals"]
    lines = 100.0 * totals["covered_lines"] / max(totals["num_statements"], 1)
    branches = 100.0 * totals["covered_branches"] / max(totals["num_branches"], 1)
    ok = lines >= args.lines and branches >= args.branches
    print(
        f"coverage: lines {lines:.1f} % (gate {args.lines:.0f} %), "
        f"branches {branches:.1f} % (gate {args.branches:.0f} %): {'ok' if ok else 'FAILED'}"
    )
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
