"""``shopguide bench``: the command line of the benchmark harness."""

from __future__ import annotations

import argparse
import dataclasses
import shlex
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from streams.settings import Settings


def register(subparsers: Any) -> None:
    """Add ``bench`` to the engine's CLI (``streams.tools.cli.build_parser``)."""
    from streams.bench.runner import SECTIONS

    p = subparsers.add_parser(
        "bench",
        help="measure throughput, latency, freshness, memory and growth (see streams/bench)",
        description="Run the benchmark on the embedded broker (or on SHOPGUIDE_BROKER, on fresh topics) "
        "and write results.json, report.md and PNG plots to --report.",
    )
    p.add_argument(
        "--duration",
        type=float,
        default=None,
        help="seconds of the throughput window and of each latency rate (default 30, --quick 4)",
    )
    p.add_argument("--json", default=None, help="also write the JSON results here")
    p.add_argument("--report", default="bench-out", help="directory of the report (default bench-out/)")
    p.add_argument(
        "--rates",
        type=rates,
        default=None,
        help="comma-separated events/s offered in the latency section (default 1000,3000)",
    )
    p.add_argument("--only", default=None, help=f"comma-separated sections among {', '.join(SECTIONS)}")
    p.add_argument("--quick", action="store_true", help="tiny sizes, for iterating and the smoke test")
    p.add_argument(
        "--profile", action="store_true", help="py-spy the worker: the throughput window, the first returning drain"
    )
    p.set_defaults(run=run)


def rates(text: str) -> tuple[int, ...]:
    """``--rates``: positive whole events/s, e.g. ``200,400,600`` (the goals are judged at 1,000)."""
    try:
        values = tuple(int(part) for part in text.split(","))
    except ValueError:
        raise argparse.ArgumentTypeError(f"not whole numbers: {text!r}") from None
    if not values or min(values) <= 0:
        raise argparse.ArgumentTypeError(f"rates must be positive: {text!r}")
    return values


def run(args: argparse.Namespace, settings: Settings) -> int:
    from streams.bench import report
    from streams.bench.runner import SECTIONS, Bench, Plan, py_spy
    from streams.tools.children import sigterm_exits

    console = Console(stderr=True, highlight=False)
    plan = Plan.quick(args.duration) if args.quick else Plan(duration_s=args.duration or Plan.duration_s)
    if args.only:
        sections = tuple(s.strip() for s in args.only.split(",") if s.strip())
        unknown = set(sections) - set(SECTIONS)
        if unknown:
            console.print(f"bench: unknown sections {', '.join(sorted(unknown))}; choose among {', '.join(SECTIONS)}")
            return 2
        plan = dataclasses.replace(plan, sections=tuple(s for s in SECTIONS if s in sections))
    if args.profile and py_spy() is None:
        console.print("bench: --profile needs py-spy (pip install py-spy)")
        return 2
    plan = dataclasses.replace(plan, profile=args.profile, rates=args.rates or plan.rates)
    command = "shopguide " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    started = time.time()
    with sigterm_exits():
        results = Bench(plan, settings, console, Path(args.report)).run()
    results["date"] = time.strftime("%Y-%m-%d %H:%M", time.localtime(started))
    results["command"] = command
    results["wall_s"] = time.time() - started
    path = report.write(results, Path(args.report), Path(args.json) if args.json else None, command)
    console.print(f"bench: {path} ({results['wall_s']:.0f} s)")
    for goal in results["goals"]:
        met = {True: "[green]met[/]", False: "[red]missed[/]", None: "not measured"}[goal["met"]]
        if goal.get("reachable") is False:
            met += " (not reachable here: a processing-free engine misses it too)"
        console.print(f"  {goal['goal']}: {met}")
    return 0
