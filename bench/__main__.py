"""Run all benchmarks (or those named): `python -m bench [startup gateway ...]`."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def main(argv: list[str]) -> int:
    names = argv or sorted(p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py"))
    failed = []
    for name in names:
        script = HERE / f"bench_{name}.py"
        if not script.exists():
            print(
                f"no benchmark named {name!r}; have: {', '.join(p.stem[6:] for p in HERE.glob('bench_*.py'))}"
            )
            return 2
        print(f"\n== {name} ==", flush=True)
        started = time.monotonic()
        if subprocess.run([sys.executable, str(script)]).returncode != 0:
            failed.append(name)
        print(f"({name}: {time.monotonic() - started:.1f} s)", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
