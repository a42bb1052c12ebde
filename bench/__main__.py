"""Run benchmarks: `python -m bench` (all), `python -m bench startup gateway`, or one benchmark
with its own options: `python -m bench startup --baseline 6cb4860` (see `python -m bench NAME -h`).
"""

from __future__ import annotations

import ast
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).parent


def available() -> dict[str, str]:
    """Benchmark name → the first line of its docstring."""
    out = {}
    for script in sorted(HERE.glob("bench_*.py")):
        doc = ast.get_docstring(ast.parse(script.read_text())) or ""
        out[script.stem.removeprefix("bench_")] = doc.strip().splitlines()[0] if doc else ""
    return out


def usage(benches: dict[str, str]) -> str:
    width = max(map(len, benches))
    lines = [__doc__.strip(), "", "benchmarks:"]
    lines += [f"  {name:<{width}}  {summary}" for name, summary in benches.items()]
    return "\n".join(lines)


def main(argv: list[str]) -> int:
    benches = available()
    if argv[:1] in (["-h"], ["--help"]):
        print(usage(benches))
        return 0
    split = next((i for i, arg in enumerate(argv) if arg.startswith("-")), len(argv))
    names, options = argv[:split] or list(benches), argv[split:]
    unknown = [name for name in names if name not in benches]
    if unknown:
        print(f"no benchmark named {unknown[0]!r}; have: {', '.join(benches)}", file=sys.stderr)
        return 2
    if options and len(names) != 1:
        print("options go to one benchmark: python -m bench NAME [OPTIONS]", file=sys.stderr)
        return 2
    failed = []
    for name in names:
        print(f"\n== {name} ==", flush=True)
        started = time.monotonic()
        if subprocess.run([sys.executable, str(HERE / f"bench_{name}.py"), *options]).returncode:
            failed.append(name)
        print(f"({name}: {time.monotonic() - started:.1f} s)", flush=True)
    if failed:
        print(f"failed: {', '.join(failed)}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
