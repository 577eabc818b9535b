"""``python -m bench`` (``make bench``): every benchmark, then the report.

``python -m bench [STEP ...]`` runs only the steps named: ``server`` (in-process cost,
scaling, memory), ``alpha`` (flask-batch 0.0.2 in its own virtual environment), ``profile``,
``e2e`` (end to end through the latency proxy), ``report`` (docs/benchmarks.md and the
chart, from the results on disk). ``--quick`` makes ``e2e`` a smoke run.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import alpha, e2e, machine, profile, report, server_cost

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
STEPS = ("server", "alpha", "profile", "e2e", "report")


def _save(name: str, data: Any) -> None:
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / name).write_text(json.dumps(data, indent=1) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument("steps", nargs="*", metavar="STEP", help=", ".join(STEPS))
    parser.add_argument("--quick", action="store_true", help="a short end-to-end smoke run")
    args = parser.parse_args(argv)
    steps: list[str] = args.steps or list(STEPS)
    unknown = set(steps) - set(STEPS)
    if unknown:
        parser.error(f"unknown steps {sorted(unknown)}; the steps are {', '.join(STEPS)}")

    def run_server() -> None:
        _save("server.json", server_cost.run([10, 100, 1000, 10_000]))

    def run_alpha() -> None:
        _save("alpha.json", alpha.run())

    def run_profile() -> None:
        _save("profile.json", profile.run())
        (RESULTS / "profile-pyinstrument.txt").write_text(profile.call_tree())

    def run_e2e() -> None:
        e2e.save(e2e.run(e2e.QUICK if args.quick else e2e.Plan()), RESULTS / "e2e.json")

    def run_report() -> None:
        report.main()

    actions: dict[str, Callable[[], None]] = {
        "server": run_server,
        "alpha": run_alpha,
        "profile": run_profile,
        "e2e": run_e2e,
        "report": run_report,
    }
    measuring = [step for step in STEPS if step in steps and step != "report"]
    described = machine.describe()
    if measuring:
        _save("machine.json", described)
    durations: dict[str, float] = {}
    for step in STEPS:
        if step not in steps:
            continue
        print(f"== {step}", flush=True)
        started = time.perf_counter()
        actions[step]()
        durations[step] = time.perf_counter() - started
        if step != "report" and set(measuring) <= set(durations):
            _save("steps.json", durations)
            described["load_average_end"] = os.getloadavg()
            _save("machine.json", described)
    total = sum(durations.values())
    print(
        f"== done in {total / 60:.1f} minutes: "
        + ", ".join(f"{k} {v:.0f} s" for k, v in durations.items())
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
