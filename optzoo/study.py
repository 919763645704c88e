"""``python -m optzoo.study NAME|all``: run designed studies and publish them."""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from optzoo.errors import ConfigError


def main(argv: list[str] | None = None) -> int:
    from optzoo import studies

    ap = argparse.ArgumentParser(
        prog="python -m optzoo.study",
        description="Run one designed study (or all) and write FINDINGS.md, summary.json and "
        "figures under OUT/<name>/, plus the index OUT/README.md.",
    )
    ap.add_argument("name", help=f"a study, or 'all': {', '.join(studies.names()) or '(none)'}")
    ap.add_argument("--out", default="results/studies", help="output root (default: %(default)s)")
    ap.add_argument("--reduced", action="store_true", help="the seconds-long CI version")
    args = ap.parse_args(argv)
    try:
        chosen = studies.names() if args.name == "all" else [studies.get(args.name).name]
    except ConfigError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out = Path(args.out)
    for name in chosen:
        study = studies.get(name)
        t0 = time.perf_counter()
        outcome = study.run(args.reduced)
        path = studies.publish(study, outcome, out, reduced=args.reduced)
        s = outcome.summary
        print(
            f"{name}: {s.metric} = {s.value:.3g} [{s.ci[0]:.3g}, {s.ci[1]:.3g}] -> {s.verdict} "
            f"({time.perf_counter() - t0:.1f} s, {path})"
        )
    studies.write_index(out)
    return 0


if __name__ == "__main__":
    sys.exit(main())
