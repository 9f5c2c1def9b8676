"""`make bench`: every benchmark in bench/, each side by side with its real peer, printing the ratios."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent


def main() -> int:
    scripts = sorted(p for p in HERE.glob("*.py") if p.name not in ("run.py",) and not p.name.startswith("_"))
    if len(sys.argv) > 1:
        scripts = [p for p in scripts if p.stem in sys.argv[1:]]
    failed = []
    for script in scripts:
        print(f"=== bench/{script.name}", flush=True)
        if subprocess.run([sys.executable, str(script)]).returncode != 0:
            failed.append(script.name)
    if failed:
        print(f"benchmarks that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
