"""List and run the benchmarks: `python -m bench [--list] [--full] [NAME ...]`.

With no names every benchmark runs; in quick mode (the default) each gets small
arguments (its `QUICK_ARGS`) so the whole set takes a few minutes, `--full` runs them at
their defaults (the sizes bench/README.md reports). Each runs as its own process
(`python -m bench.NAME`), so one's state never leaks into the next. The exit code is
non-zero only when a benchmark crashed; benchmarks report missed targets, they do not
fail on them.

Every run writes bench/results.json (machine, load average, each benchmark's result,
each figure with its target and whether it was met) and regenerates the results table
of docs/performance.md; `--no-write` leaves both alone.
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import pkgutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

from bench import _results
from bench._report import RESULTS_ENV, table

HERE = Path(__file__).resolve().parent

# Quick-mode arguments of benchmarks that do not declare their own. A benchmark declares
# them as a module-level list literal, `QUICK_ARGS = ["--secrets", "200"]`, read here
# without importing the module; the full sizes are each script's defaults.
FALLBACK_QUICK_ARGS: dict[str, list[str]] = {
    "emulator_rps": ["--sets", "300", "--gets", "1000"],
    "proxy_overhead": ["--round-trips", "500", "--megabytes", "32", "--rounds", "1"],
}


def quick_args(name: str) -> list[str] | None:
    """The benchmark's `QUICK_ARGS` literal, else the fallback above, else None."""
    tree = ast.parse((HERE / f"{name}.py").read_text())
    for node in tree.body:
        target = None
        if isinstance(node, ast.Assign) and len(node.targets) == 1:
            target, value = node.targets[0], node.value
        elif isinstance(node, ast.AnnAssign) and node.value is not None:
            target, value = node.target, node.value
        if isinstance(target, ast.Name) and target.id == "QUICK_ARGS":
            found = ast.literal_eval(value)
            if not isinstance(found, list) or not all(isinstance(a, str) for a in found):
                raise ValueError(f"bench/{name}.py: QUICK_ARGS must be a list of strings")
            return found
    return FALLBACK_QUICK_ARGS.get(name)


def discovered() -> list[str]:
    """Every runnable benchmark module in this folder (private modules excluded)."""
    return sorted(m.name for m in pkgutil.iter_modules([str(HERE)]) if not m.name.startswith("_"))


def summary(name: str) -> str:
    """The first paragraph of a benchmark's docstring, read without importing it."""
    text = (HERE / f"{name}.py").read_text()
    for quote in ('"""', "'''"):
        if quote in text:
            paragraph = text.split(quote, 2)[1].strip().split("\n\n")[0]
            return " ".join(paragraph.split())
    return ""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", help="benchmarks to run (default: all)")
    parser.add_argument("--list", action="store_true", help="list the benchmarks and exit")
    parser.add_argument("--full", action="store_true", help="run at full size (the defaults)")
    parser.add_argument(
        "--no-write", action="store_true", help="write neither results.json nor the page"
    )
    args = parser.parse_args()

    known = discovered()
    if args.list:
        rows = [
            [name, summary(name), " ".join(quick_args(name) or ["(not run in quick mode)"])]
            for name in known
        ]
        print(table(["benchmark", "what", "quick mode"], rows, align="lll"))
        return 0
    unknown = [n for n in args.names if n not in known]
    if unknown:
        parser.error(f"no benchmark named {', '.join(unknown)} (have: {', '.join(known)})")

    chosen = args.names or known
    results = []
    run_started, at_start = datetime.now(UTC), _results.machine()
    figures_file = Path(tempfile.mkstemp(prefix="kvdr-bench-", suffix=".jsonl")[1])
    env = {**os.environ, RESULTS_ENV: str(figures_file)}
    for name in chosen:
        quick = quick_args(name)
        if not args.full and quick is None and not args.names:
            print(f"-- {name}: skipped in quick mode (it declares no QUICK_ARGS); --full runs it")
            results.append([name, "skipped", "-"])
            continue
        extra = [] if args.full else quick or []
        command = [sys.executable, "-m", f"bench.{name}", *extra]
        print(f"-- {name}: {' '.join(command[1:])}", flush=True)
        started = time.perf_counter()
        code = subprocess.call(command, cwd=HERE.parent, env=env)
        results.append(
            [name, "ok" if code == 0 else f"CRASHED (exit {code})", time.perf_counter() - started]
        )
        print(flush=True)
    print(table(["benchmark", "result", "seconds"], results, align="llr"))
    figures = _results.read_figures(figures_file)
    figures_file.unlink(missing_ok=True)
    if not args.no_write:
        _write(args, run_started, at_start, results, figures)
    return 0 if all(r[1] in ("ok", "skipped") for r in results) else 1


def _write(
    args: argparse.Namespace,
    started: datetime,
    at_start: dict[str, object],
    results: list[list[object]],
    figures: list[dict[str, object]],
) -> None:
    benchmarks = [
        {"name": r[0], "result": r[1], "seconds": r[2] if isinstance(r[2], float) else None}
        for r in results
    ]
    mode = "full" if args.full else "quick"
    doc = _results.document(mode, started, at_start, benchmarks, figures)
    results_path = HERE / "results.json"
    results_path.write_text(json.dumps(doc, indent=1) + "\n", encoding="utf-8")
    page = HERE.parent / "docs" / "performance.md"
    page.write_text(_results.updated_page(page.read_text(), _results.table(doc)))
    print(f"wrote {results_path.relative_to(HERE.parent)} and {page.relative_to(HERE.parent)}")


if __name__ == "__main__":
    sys.exit(main())
