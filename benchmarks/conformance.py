"""Run every ONNX backend node case through nnport.to_torch and print pass/fail/skip counts.

    .venv/bin/python benchmarks/conformance.py [--per-op] [--failures] [-k SUBSTRING]

Uses the same runner as tests/conformance (generate the PyTorch code, exec it, compare with the
case's expected outputs at its own rtol/atol).
"""
from __future__ import annotations

import argparse
import collections
import os
import signal
import sys
import time
import warnings

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "tests"))
warnings.filterwarnings("ignore")


def op_of(case) -> str:
    nodes = case.model.graph.node
    ops = [n.op_type for n in nodes]
    return ops[0] if len(set(ops)) == 1 else (ops[-1] if ops else "?")


def main() -> int:
    from conformance.cases import all_cases, run_case
    from conformance.skips import NOT_YET, SKIPS

    ap = argparse.ArgumentParser()
    ap.add_argument("--per-op", action="store_true")
    ap.add_argument("--failures", action="store_true", help="print each failure's first line")
    ap.add_argument("-k", default="", help="only cases whose name contains this")
    ap.add_argument("--timeout", type=int, default=60)
    args = ap.parse_args()

    def on_alarm(signum, frame):
        raise TimeoutError("case timed out")

    signal.signal(signal.SIGALRM, on_alarm)
    cases = {n: c for n, c in all_cases().items() if args.k in n}
    stats = collections.defaultdict(collections.Counter)
    failures = []
    t0 = time.time()
    for name, case in sorted(cases.items()):
        op = op_of(case)
        if name in SKIPS:
            stats[op]["skipped"] += 1
            continue
        signal.alarm(args.timeout)
        try:
            run_case(case)
            stats[op]["passed"] += 1
        except BaseException as exc:  # noqa: BLE001 - we report every failure
            if isinstance(exc, KeyboardInterrupt):
                raise
            stats[op]["failed"] += 1
            msg = " ".join(f"{type(exc).__name__}: {exc}".split())[:200]
            failures.append((name, msg))
        finally:
            signal.alarm(0)
    total = collections.Counter()
    for c in stats.values():
        total.update(c)
    if args.per_op:
        print("| op | passed | failed | skipped |")
        print("|---|---:|---:|---:|")
        for op in sorted(stats):
            c = stats[op]
            print(f"| {op} | {c['passed']} | {c['failed']} | {c['skipped']} |")
        print()
    if args.failures:
        for name, msg in failures:
            print(f"FAIL {name}: {msg}")
        print()
    print(f"{len(cases)} cases: {total['passed']} passed, {total['failed']} failed, "
          f"{total['skipped']} skipped ({time.time() - t0:.0f} s)")
    print(f"({len([n for n in NOT_YET if n in cases])} of the failures are listed as not yet done)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
