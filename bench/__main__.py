"""`python -m bench`: run the benchmarks, print markdown tables, write JSON to bench/out/.

    python -m bench                      # every scenario, full size (a few minutes)
    python -m bench --quick              # smaller sizes, for a smoke run
    python -m bench --only ack --only bulk
    python -m bench --variant fixed=/path/to/other/checkout   # compare a change in the same run

A full run (every scenario, not --quick, no --variant) also rewrites bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import datetime
import os
import shutil
import sys
import tempfile
import time
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from bench.machine import describe_machine, git_commit, loadavg
from bench.procs import REPO_ROOT, pin
from bench.report import ScenarioResult, Table, write_json
from bench.scenarios import (
    ack,
    bulk,
    callbacks,
    costs,
    e2e,
    memory,
    replicas,
    scrape,
    timeline,
)
from bench.stack import Placement, RunContext, Variant

SCENARIOS: dict[str, Callable[[RunContext], Awaitable[ScenarioResult]]] = {
    "ack": ack.run,
    "e2e": e2e.run,
    "costs": costs.run,
    "bulk": bulk.run,
    "memory": memory.run,
    "replicas": replicas.run,
    "scrape": scrape.run,
    "callbacks": callbacks.run,
    "timeline": timeline.run,
}
#: No scenario may run longer than this, whatever happens.
SCENARIO_TIMEOUT_S = 900.0
BENCH_DIR = Path(__file__).resolve().parent


def _variant(text: str) -> Variant:
    name, sep, path = text.partition("=")
    src = Path(path).expanduser().resolve()
    if not sep or not name or not (src / "bot").is_dir():
        raise argparse.ArgumentTypeError(
            f"expected NAME=PATH with PATH holding bot/ and handlers/, got {text!r}"
        )
    return Variant(name=name, src=src)


def build_parser() -> argparse.ArgumentParser:
    """The command line of `python -m bench`."""
    parser = argparse.ArgumentParser(
        prog="python -m bench", description="roombot's benchmarks (see bench/README.md)."
    )
    parser.add_argument("--quick", action="store_true", help="smaller sizes for a smoke run")
    parser.add_argument(
        "--only",
        action="append",
        choices=sorted(SCENARIOS),
        help="run only this scenario (repeatable); default: all",
    )
    parser.add_argument(
        "--variant",
        action="append",
        type=_variant,
        default=[],
        metavar="NAME=PATH",
        help="also measure the roombot in PATH (a tree with bot/ and handlers/), e.g. a worktree "
        "of a branch with a fix (repeatable)",
    )
    parser.add_argument(
        "--no-pin", action="store_true", help="do not pin processes to separate cores"
    )
    parser.add_argument(
        "--out", type=Path, default=BENCH_DIR / "out", help="where JSON and markdown go"
    )
    parser.add_argument("--keep", action="store_true", help="keep the scratch directory (logs)")
    return parser


async def _run(args: argparse.Namespace) -> int:
    names = args.only or list(SCENARIOS)
    machine = describe_machine()  # before pinning, which narrows what this process may use
    placement = Placement.choose(pin=not args.no_pin)
    pin(os.getpid(), placement.loadgen)
    variants = [Variant("roombot"), *args.variant]
    started = datetime.datetime.now(datetime.UTC)
    meta: dict[str, Any] = {
        "started": started.isoformat(timespec="seconds"),
        "argv": sys.argv[1:],
        "quick": args.quick,
        "machine": machine,
        "git": git_commit(REPO_ROOT),
        "variants": [
            {"name": v.name, **(git_commit(v.src) if v.src else {"path": str(REPO_ROOT)})}
            for v in variants
        ],
        "placement": placement.describe(),
    }
    _print_header(meta)
    scratch = Path(tempfile.mkdtemp(prefix="roombot-bench-"))
    results: list[ScenarioResult] = []
    failures: dict[str, str] = {}
    async with aiohttp.ClientSession() as session:
        ctx = RunContext(
            quick=args.quick,
            placement=placement,
            workdir=scratch,
            variants=variants,
            session=session,
        )
        for name in names:
            print(f"\n### {name}\n", flush=True)
            began = time.monotonic()
            try:
                async with asyncio.timeout(SCENARIO_TIMEOUT_S):
                    result = await SCENARIOS[name](ctx)
            except Exception as exc:  # report and go on with the other scenarios
                failures[name] = f"{type(exc).__name__}: {exc}"
                traceback.print_exc()
                continue
            result.data["elapsed_s"] = time.monotonic() - began
            results.append(result)
            print(result.markdown(), flush=True)
            write_json(args.out / f"{name}.json", {**meta, **result.as_json()})
    meta["finished_loadavg"] = loadavg()
    meta["failures"] = failures
    markdown = _document(meta, results)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "results.md").write_text(markdown)
    write_json(args.out / "run.json", {**meta, "scenarios": [r.as_json() for r in results]})
    print("\n" + _targets_table(results).markdown())
    if not args.quick and not args.only and not args.variant and not failures:
        (BENCH_DIR / "RESULTS.md").write_text(markdown)
        print(f"\nwrote {BENCH_DIR / 'RESULTS.md'}")
    print(f"JSON and markdown in {args.out}")
    if args.keep:
        print(f"scratch directory (logs): {scratch}")
    else:
        shutil.rmtree(scratch, ignore_errors=True)
    for name, error in failures.items():
        print(f"scenario {name} failed: {error}", file=sys.stderr)
    return 1 if failures else 0


def _print_header(meta: dict[str, Any]) -> None:
    machine = meta["machine"]
    git = meta["git"]
    print(
        f"roombot benchmarks — commit {git.get('short')}{' (dirty)' if git.get('dirty') else ''}, "
        f"{machine['usable_cores']} cores ({machine['cpu_model']}), Python {machine['python']}, "
        f"load {machine['loadavg']}",
        flush=True,
    )


def _targets_table(results: list[ScenarioResult]) -> Table:
    return Table(
        title="Targets",
        headers=["figure", "this run", "target", ""],
        rows=[t.row() for r in results for t in r.targets],
    )


def _document(meta: dict[str, Any], results: list[ScenarioResult]) -> str:
    machine = meta["machine"]
    git = meta["git"]
    packages = ", ".join(f"{k} {v}" for k, v in machine["packages"].items() if v)
    lines = [
        "# roombot benchmark results",
        "",
        f"- run: {meta['started']} (`{' '.join(['python -m bench', *meta['argv']])}`)",
        f"- commit: `{git.get('commit')}`{' (uncommitted changes)' if git.get('dirty') else ''}",
        f"- machine: {machine['usable_cores']} cores, {machine['cpu_model']}, "
        f"{machine['memory_gib']} GiB; load average {machine['loadavg']} at start, "
        f"{meta.get('finished_loadavg')} at end",
        f"- Python {machine['python']} ({machine['platform']}); {packages}",
        f"- placement: {meta['placement']}",
        "",
        _targets_table(results).markdown(),
    ]
    for result in results:
        lines += ["", f"### {result.name}", "", result.markdown()]
    if meta.get("failures"):
        lines += ["", "### failed scenarios", ""]
        lines += [f"- {name}: {error}" for name, error in meta["failures"].items()]
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    """Entry point of `python -m bench`."""
    args = build_parser().parse_args(argv)
    if not sys.platform.startswith("linux"):
        print("python -m bench needs Linux (/proc)", file=sys.stderr)
        return 2
    return asyncio.run(_run(args))


if __name__ == "__main__":
    raise SystemExit(main())
