"""Writes ``docs/benchmarks.md`` and ``docs/benchmarks.png`` from ``bench/results/*.json``.

``python -m bench.report`` redraws both from the last results without measuring anything.
If ``bench/results/load.md`` exists (``make load`` writes it), it is included verbatim under
"Load".
"""

from __future__ import annotations

import json
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bench import compression, floor, groups
from bench.latency_proxy import INITIAL_WINDOW, SEGMENT, Link
from bench.timing import median

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
DOC = ROOT / "docs" / "benchmarks.md"
CHART = ROOT / "docs" / "benchmarks.png"
MIB = 1024 * 1024

SCENARIO_ORDER = ["sequential", "threads8", "http2", "batch", "batch_hypercorn", "batch_async"]
SHORT = {
    "sequential": "sequential",
    "threads8": "8 threads",
    "http2": "HTTP/2",
    "batch": "batch",
    "batch_hypercorn": "batch (Hypercorn)",
    "batch_async": "batch (async httpx)",
}
#: Scenarios that send their N = 100 calls as one exchange on one connection, so that their
#: bytes meet one congestion window; the others send one call at a time.
ONE_EXCHANGE = {"http2", "batch", "batch_hypercorn", "batch_async"}
#: The networks of the end-to-end runs (``bench.e2e.NETWORKS``), as the tables name them.
NETWORK_TITLES = {"latency": "", "slow_start": ", TCP slow start"}


def load(name: str) -> Any:
    path = RESULTS / name
    return json.loads(path.read_text()) if path.exists() else None


# -- formatting -------------------------------------------------------------------------------


def ms(seconds: float) -> str:
    value = seconds * 1000
    if value >= 100:
        return f"{value:,.0f}"
    if value >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def us(value: float) -> str:
    return f"{value:,.0f}" if value >= 1000 else f"{value:.1f}"


def spread(values: Sequence[float], scale: float = 1.0, unit: str = "") -> str:
    """``median (min-max)``, or just the value for one run."""
    fmt = ms if unit == "ms" else (lambda v: us(v * scale))
    if len(values) == 1:
        return f"{fmt(values[0])} (1 run)"
    return f"{fmt(median(values))} ({fmt(min(values))}-{fmt(max(values))})"


def size(n: int) -> str:
    if n >= MIB:
        return f"{n / MIB:.2f} MiB"
    return f"{n / 1024:,.1f} KiB" if n >= 1024 else f"{n} bytes"


def ratio(value: float) -> str:
    return f"{value:.2f}x" if value < 10 else f"{value:.0f}x"


def status(ok: bool) -> str:
    return "**met**" if ok else "**not met**"


# -- sections ---------------------------------------------------------------------------------


@dataclass
class Target:
    text: str
    measured: str
    ok: bool | None  # None: not measured


def e2e_cell(
    e2e: Any, rtt: float, n: int, scenario: str, variant: str = "cold", *, network: str = "latency"
) -> list[float]:
    for cell in e2e["cells"]:
        if (
            cell["rtt_ms"],
            cell["n"],
            cell["scenario"],
            cell["variant"],
            cell.get("network", "latency"),
        ) == (rtt, n, scenario, variant, network):
            return list(cell["seconds"])
    return []


def flights(size: int) -> int:
    """Round trips slow start needs to carry ``size`` bytes one way from a fresh window."""
    return len(Link(0.0, window=INITIAL_WINDOW * SEGMENT, round_trip=1.0).send(0.0, size))


#: Issue 14's targets against the limit, at 50 ms: (what, N, variant, network, round trips
#: the limit counts, bound on batch / (round trips + direct cost)).
LIMITS = [
    ("warm, 50 ms, N = 100, slow start", 100, "warm", "slow_start", 1, 1.15),
    ("cold, 50 ms, N = 100, slow start", 100, "cold", "slow_start", 2, 1.1),
    ("cold, 50 ms, N = 1,000, at most 100 parts a batch", 1000, "cold", "latency", 2, 1.5),
]


def limit_targets(e2e: Any) -> list[Target]:
    """Issue 14: the batch against its physical limit (round trips plus the direct cost of the
    same calls, measured in the same run) and against HTTP/2, on the modelled networks."""
    direct = e2e.get("direct_seconds") or {}
    out: list[Target] = []
    for what, n, variant, network, trips, bound in LIMITS:
        for key in ("batch", "batch_async"):
            batch = e2e_cell(e2e, 50.0, n, key, variant, network=network)
            if not batch or str(n) not in direct:
                continue
            floor = median(direct[str(n)])
            value = median(batch) / (trips * 0.050 + floor)
            measured = f"{value:.2f} ({ms(median(batch))} ms vs {trips} x 50 + {ms(floor)} ms"
            # What the target leaves beyond the round trips, against the same batch with none.
            at_zero = e2e_cell(e2e, 0.0, n, key, variant)
            if at_zero:
                left = bound * (trips * 0.050 + floor) - trips * 0.050
                measured += (
                    f"; the target leaves {ms(left)} ms beyond the round trips, the same batch "
                    f"at 0 ms takes {ms(median(at_zero))}"
                )
            out.append(
                Target(
                    f"issue 14: {what}: {SHORT[key]} / ({trips} RTT + direct cost) <= {bound:g}",
                    measured + ")",
                    value <= bound,
                )
            )
    batch = e2e_cell(e2e, 50.0, 100, "batch", "cold", network="slow_start")
    h2 = e2e_cell(e2e, 50.0, 100, "http2", "cold", network="slow_start")
    if batch and h2:
        value = median(h2) / median(batch)
        measured = f"{value:.2f} ({ms(median(h2))} ms vs {ms(median(batch))} ms"
        if "100" in direct:  # a batch can take no less than its round trips and direct cost
            floor = 2 * 0.050 + median(direct["100"])
            measured += (
                f"; a batch at its limit, {ms(floor)} ms, would give {median(h2) / floor:.2f}"
            )
        out.append(
            Target(
                "issue 14: cold, 50 ms, N = 100, slow start: HTTP/2 / batch >= 3",
                measured + ")",
                value >= 3,
            )
        )
    return out


def cost_of(server: Any, n: int) -> dict[str, Any] | None:
    for cost in server["costs"]:
        if cost["n"] == n:
            return dict(cost)
    return None


def memory_of(server: Any, case: str, mode: str) -> dict[str, Any] | None:
    for result in server["memory"]:
        if (result["case"], result["mode"]) == (case, mode):
            return dict(result)
    return None


#: The memory cases of bench/server_cost.py, as the tables name them.
MEMORY_CASES = {
    "parts1000": "1,000 small parts",
    "blob50mb": "one 50 MB binary part",
    "json-brackets": "JSON: one body `[[],[],...]`",
    "json-objects": "JSON: one body `[{},{},...]`",
    "json-many": "JSON: 20,000 requests, bodies `[[],...]`",
    "answer128mb": "one part answered with 128 MiB, streamed (Flask)",
    "answer128mb-asgi": "one part answered with 128 MiB, streamed (ASGI)",
    "answer128mb-gzip": "one part answered with 128 MiB, streamed in gzip (Flask)",
}


def targets(
    e2e: Any,
    server: Any,
    *,
    hostile: Any = None,
    parallel: Any = None,
    httpx_cost: Any = None,
    profile: Any = None,
) -> list[Target]:
    out: list[Target] = []
    if server:
        for n in (100, 1000):
            cost = cost_of(server, n)
            if cost:
                r = median(cost["ratio"])
                out.append(
                    Target(
                        f"per-part overhead b/a <= 1.2 at N = {n:,}",
                        f"{r:.2f} (per round: {min(cost['ratio']):.2f}-{max(cost['ratio']):.2f})",
                        r <= 1.2,
                    )
                )
        scale = server.get("scaling")
        if scale and "10000" in scale["relative_to_100"]:
            relative = scale["relative_to_100"]["10000"]
            growth = median(relative)
            out.append(
                Target(
                    "time per part at N = 10,000 within 1.2x of N = 100",
                    f"{growth:.2f}x ({us(median(scale['per_part_us']['10000']))} vs "
                    f"{us(median(scale['per_part_us']['100']))} µs/part; per round "
                    f"{min(relative):.2f}-{max(relative):.2f})",
                    growth <= 1.2,
                )
            )
    if e2e:
        for variant in ("cold", "warm"):
            seq = e2e_cell(e2e, 50.0, 100, "sequential", variant)
            batch = e2e_cell(e2e, 50.0, 100, "batch", variant)
            h2 = e2e_cell(e2e, 50.0, 100, "http2", variant)
            if seq and batch:
                speedup = median(seq) / median(batch)
                # Round trips each way must wait for: the handshake, then 100 calls or 1 batch.
                limit = 101 / 2 if variant == "cold" else 100 / 1
                out.append(
                    Target(
                        f"50 ms RTT, N = 100, {variant}: batch >= 40x faster than sequential",
                        f"{speedup:.1f}x ({ms(median(seq))} ms vs {ms(median(batch))} ms; "
                        f"round trips alone would allow {limit:.0f}x)",
                        speedup >= 40,
                    )
                )
            if h2 and batch:
                out.append(
                    Target(
                        f"50 ms RTT, N = 100, {variant}: batch no slower than HTTP/2",
                        f"batch {ms(median(batch))} ms, HTTP/2 {ms(median(h2))} ms "
                        f"({median(h2) / median(batch):.2f}x)",
                        median(batch) <= median(h2),
                    )
                )
        out += limit_targets(e2e)
    if server:
        measured = [
            (mode, result)
            for mode in ("tracemalloc", "rss")
            if (result := memory_of(server, "blob50mb", mode))
        ]
        if measured:
            factors = [r["extra_peak_bytes"] / r["body_bytes"] for _, r in measured]
            text = ", ".join(
                f"{mode} {factor:.3f}x ({r['extra_peak_bytes'] / MIB:.1f} MiB)"
                for (mode, r), factor in zip(measured, factors, strict=True)
            )
            out.append(
                Target(
                    "50 MB part: peak extra memory < 2x the body (by both measures)",
                    f"{text}, for {measured[0][1]['body_bytes'] / MIB:.1f} MiB",
                    max(factors) < 2,
                )
            )
        for case, front_end in (
            ("answer128mb", "Flask"),
            ("answer128mb-asgi", "ASGI"),
            ("answer128mb-gzip", "Flask, gzip"),
        ):
            answers = [
                answer
                for mode in ("tracemalloc", "rss")
                if (answer := memory_of(server, case, mode))
            ]
            if answers:
                answer_growth = [a["extra_peak_bytes"] / a["answer_bytes"] for a in answers]
                out.append(
                    Target(
                        f"128 MiB streamed answer ({front_end}): peak extra memory < 1.5x the "
                        "answer (issue 11)",
                        ", ".join(f"{factor:.3f}x" for factor in answer_growth),
                        max(answer_growth) < 1.5,
                    )
                )
        json_cases = [
            (case, mode, result)
            for case in MEMORY_CASES
            if case.startswith("json-")
            for mode in ("tracemalloc", "rss")
            if (result := memory_of(server, case, mode))
        ]
        if json_cases:
            worst = max(r["extra_peak_bytes"] / r["body_bytes"] for _, _, r in json_cases)
            text = ", ".join(
                f"{case.removeprefix('json-')} {mode} "
                f"{r['extra_peak_bytes'] / r['body_bytes']:.2f}x"
                for case, mode, r in json_cases
            )
            out.append(
                Target(
                    "8 MiB JSON batch, every shape: peak extra memory < 4x the body (issue 11)",
                    text,
                    worst < 4,
                )
            )
    out += client_cost_targets(profile, server)
    if hostile:
        worst = max(hostile["cells"], key=lambda cell: median(cell["ratio"]["blanks"]))
        ratio_ = median(worst["ratio"]["blanks"])
        out.append(
            Target(
                "issue 11: reading a body of blanks after a boundary (1 to 16 MiB, 64 KiB and "
                "1 KiB chunks) within 1.5x of a plain body's time",
                f"{ratio_:.2f}x at worst ({worst['size'] // MIB} MiB in "
                f"{worst['chunk'] // 1024} KiB chunks; see Hostile bodies)",
                ratio_ <= 1.5,
            )
        )
    for cost in (parallel or {}).get("thread_cost") or []:
        ratio_ = median(cost["ratio"])
        out.append(
            Target(
                f"issue 14: parts on a thread pool, CPU only, N = {cost['n']:,}: "
                f"W = {cost['workers']} / W = 1 <= 1.15",
                f"{ratio_:.2f} (per round: {min(cost['ratio']):.2f}-{max(cost['ratio']):.2f})",
                ratio_ <= 1.15,
            )
        )
    if httpx_cost:
        out += httpx_targets(httpx_cost)
    return out


def client_cost_targets(profile: Any, server: Any) -> list[Target]:
    """Issue 14: `Batching`'s own cost per call (bench.profile), beside the machine's speed."""
    client = (profile or {}).get("client")
    if not client:
        return []
    queue, send = client["default"]["queue_us"], client["default"]["send_us"]
    # A bound in µs holds on a machine of some speed: Flask's own call, timed in the same
    # run, says which speed this one had (about 70 µs in the runs that met the bound).
    direct = cost_of(server, 100) if server else None
    speed = (
        f"; Flask's own call in this run: {median(direct['direct']) / 100 * 1e6:.0f} µs"
        if direct
        else ""
    )
    return [
        Target(
            f"issue 14: the client's own cost per call, `Batching`, N = {client['n']} "
            "(queue + encode + read + fill, CPU time) <= 50 µs",
            f"{queue + send:.0f} µs (queue {queue:.0f}, send {send:.0f}{speed}; see Where "
            "the batch endpoint's time goes)",
            queue + send <= 50,
        )
    ]


def httpx_targets(cost: Any) -> list[Target]:
    """Issue 14: the httpx transports' own cost per call beyond httpx's (bench.httpx_cost)."""
    out = []
    for kind, name in (("sync", "BatchTransport"), ("async", "AsyncBatchTransport")):
        ours = cost[kind]["ours_us"]
        out.append(
            Target(
                f"issue 14: {name}'s own cost per call beyond httpx's own request handling "
                f"<= {cost['target_us']:g} µs (N = {cost['n']}, in-process)",
                f"{median(ours):.1f} µs (per round {min(ours):.1f}-{max(ours):.1f}; httpx "
                f"alone {median(cost[kind]['httpx_us']):.0f} µs/call)",
                median(ours) <= cost["target_us"],
            )
        )
    return out


#: Issue 14's targets for the ASGI middleware (bench/asgi_cost.py): b/a at N = 1,000.
ASGI_TARGETS = {"starlette": ("Starlette", 1.6), "fastapi": ("FastAPI", 1.3)}
ASGI_TARGET_N = 1000


def asgi_targets(asgi: Any) -> list[Target]:
    """A row per framework of :data:`ASGI_TARGETS`, "not measured" without its result."""
    rows = asgi.get("results") if isinstance(asgi, dict) else None
    measured = {
        row.get("framework"): _round_ratios(row)
        for row in rows or []
        if isinstance(row, dict) and row.get("n") == ASGI_TARGET_N
    }
    out: list[Target] = []
    for framework, (name, bound) in ASGI_TARGETS.items():
        text = f"ASGI b/a, {name}, N = {ASGI_TARGET_N:,}: <= {bound} (issue 14)"
        ratios = measured.get(framework)
        if isinstance(ratios, list) and ratios:
            r = median(ratios)
            spread_ = f"{r:.2f} (per round: {min(ratios):.2f}-{max(ratios):.2f})"
            out.append(Target(text, spread_, r <= bound))
        elif isinstance(ratios, (int, float)):
            out.append(Target(text, f"{ratios:.2f}", ratios <= bound))
        else:
            out.append(Target(text, "-", None))
    return out


def _round_ratios(row: dict[str, Any]) -> Any:
    """The per-round b/a of a row of ``asgi_cost.json`` (its ``ratio`` is their median)."""
    direct, batch = row.get("direct"), row.get("batch")
    if isinstance(direct, list) and isinstance(batch, list) and direct and batch:
        return [b / a for a, b in zip(direct, batch, strict=False) if a]
    return row.get("ratio")


def section_targets(
    e2e: Any,
    server: Any,
    *,
    hostile: Any = None,
    parallel: Any = None,
    httpx_cost: Any = None,
    asgi: Any = None,
    profile: Any = None,
) -> list[str]:
    lines = ["## Targets (issues 3, 11 and 14)", "", "| target | measured | |", "|---|---|---|"]
    rows = targets(
        e2e, server, hostile=hostile, parallel=parallel, httpx_cost=httpx_cost, profile=profile
    )
    for target in rows + asgi_targets(asgi):
        verdict = "not measured" if target.ok is None else status(target.ok)
        lines.append(f"| {target.text} | {target.measured} | {verdict} |")
    note = (
        "Issue 14's *direct cost* is Flask's own work answering the same N calls, dispatched "
        "one by one into the application in the benchmark's process, no server and no "
        "socket (the server side's (a)), measured in the same run as the end-to-end cells; "
        "it is the part of the time no client and no batch format can remove. RTTs are "
        "nominal (50 ms); the proxy's own excess per round trip is in the end-to-end section. "
        "Where each of issue 14's targets ends, and why a target is missed: "
        "[performance.md](performance.md#issue-14-where-each-target-ends); how the numbers "
        "got there, step by step with before/after measurements: the rest of that page."
    )
    return [*lines, "", note, ""]


def section_machine(machine: Any, steps: Any) -> list[str]:
    if not machine:
        return []
    v = machine["versions"]
    memory = f"{machine['memory_gib']:.0f} GiB" if machine.get("memory_gib") else "unknown"
    load = ", ".join(f"{x:.2f}" for x in machine["load_average"])
    if machine.get("load_average_end"):
        end = ", ".join(f"{x:.2f}" for x in machine["load_average_end"])
        load += f" at the start, {end} at the end"
    lines = [
        "## Machine and versions",
        "",
        f"- {machine['cores']} cores, {machine['cpu']}, {memory} of memory, {machine['os']}; "
        f"load average (1, 5, 15 min) {load} (the machine is shared: other work "
        "runs beside the benchmark, which is why every comparison is made side by side "
        "within one run, and why medians are reported)",
        f"- Python {v['python']}, Flask {v['flask']}, Werkzeug {v['werkzeug']}, "
        f"flask-batch {v['flask-batch']} (commit {machine['commit']})",
        f"- clients: requests {v['requests']} (urllib3 {v['urllib3']}), httpx {v['httpx']} "
        f"(h2 {v['h2']}); servers: gunicorn {v['gunicorn']}, Hypercorn {v['hypercorn']}"
        + (
            f"; ASGI: Starlette {v['starlette']}, FastAPI {v['fastapi']}"
            if "starlette" in v and "fastapi" in v
            else ""
        ),
        f"- run on {machine['date']}",
    ]
    if steps:
        parts = ", ".join(f"{name} {seconds:.0f} s" for name, seconds in steps.items())
        lines.append(f"- `make bench` took {sum(steps.values()) / 60:.1f} minutes: {parts}")
    return [*lines, ""]


def section_e2e(e2e: Any) -> list[str]:
    if not e2e:
        return ["## End to end", "", "Not run.", ""]
    scenarios = e2e["scenarios"]
    keys = [k for k in SCENARIO_ORDER if k in scenarios]
    networks = sorted(
        {(c.get("network", "latency"), c["rtt_ms"]) for c in e2e["cells"]},
        key=lambda pair: (list(NETWORK_TITLES).index(pair[0]), pair[1]),
    )
    ns = sorted({c["n"] for c in e2e["cells"] if c["variant"] == "cold"})
    lines = [
        "## End to end: wall time for N calls",
        "",
        "The same N calls (even: `GET /items/<k>`; odd: `PATCH /items/<k>` with a small JSON "
        "body; every answer checked), from a cold client (no connection open yet), through "
        "the latency proxy (`bench/latency_proxy.py`, its own process) at each round trip "
        "time. The proxy charges one round trip for each new connection's TCP handshake; TLS "
        "is not modelled. Scenarios:",
        "",
    ]
    for key in keys:
        lines.append(f"- **{SHORT[key]}**: {scenarios[key]['label']}")
    lines += [
        "",
        "Servers, each in its own process: **gunicorn** (`gthread` worker, 1 process, 8 "
        "threads): the most common production server for Flask, and its `gthread` worker "
        "keeps connections alive (the default `sync` worker closes each after one response); "
        "**Hypercorn** for HTTP/2 over cleartext (h2c with prior knowledge, which httpx "
        "speaks with `http1=False, http2=True`; at most 100 concurrent streams, its "
        "default). The batch also runs against Hypercorn (over HTTP/1.1) as a control, so "
        "that batch vs HTTP/2 is also compared on one server. The batch endpoint keeps "
        f"Flask-Batch's default of at most {e2e['max_parts']} parts, so N = 1,000 is sent "
        f"as {1000 // e2e['max_parts']} batches, split by the client itself as for any user "
        "(every call queued, one `send_batch()`; `asyncio.gather` through the transport), "
        "one after another or side by side as its defaults say.",
        "",
        *proxy_accuracy(e2e),
        "Medians in milliseconds (min-max over the runs; runs per cell in the last column). "
        "Each cell ran up to 7 times, fewer when its runs would have taken more than about "
        "30 s: the slowest cell (sequential at 50 ms, N = 1,000: about 55 s a run) ran once. "
        "The ratios are each scenario's median over the batch's.",
        "",
        *slow_start_text(e2e),
    ]
    for network, rtt in networks:
        lines += [
            f"### {rtt:g} ms round trip{NETWORK_TITLES[network]}",
            "",
            "| N | " + " | ".join(SHORT[k] for k in keys) + " | runs |",
            "|---:|" + "---:|" * len(keys) + "---|",
        ]
        ratio_rows = []
        for n in ns:
            cells = [e2e_cell(e2e, rtt, n, k, network=network) for k in keys]
            if not any(cells):
                continue
            runs = "/".join(str(len(c)) for c in cells)
            lines.append(
                f"| {n:,} | "
                + " | ".join(spread(c, unit="ms") if c else "-" for c in cells)
                + f" | {runs} |"
            )
            batch = e2e_cell(e2e, rtt, n, "batch", network=network)
            if batch:
                ratio_rows.append(
                    f"| {n:,} | "
                    + " | ".join(ratio(median(c) / median(batch)) if c else "-" for c in cells)
                    + " |"
                )
        lines += [
            "",
            "Time relative to the batch (higher: the batch is that many times faster):",
            "",
            "| N | " + " | ".join(SHORT[k] for k in keys) + " |",
            "|---:|" + "---:|" * len(keys),
            *ratio_rows,
            "",
        ]
    warm_ns = sorted({c["n"] for c in e2e["cells"] if c["variant"] == "warm"})
    if warm_ns:
        lines += [
            "### Warm connections",
            "",
            "The same, with every connection already open (and used once) when the clock "
            "starts: a client in the middle of a session rather than one starting up. The "
            "handshake round trip is gone from every scenario.",
            "",
            "| RTT | N | " + " | ".join(SHORT[k] for k in keys) + " | batch speed-up |",
            "|---:|---:|" + "---:|" * len(keys) + "---|",
        ]
        for network, rtt in networks:
            for n in warm_ns:
                cells = [e2e_cell(e2e, rtt, n, k, "warm", network=network) for k in keys]
                batch = e2e_cell(e2e, rtt, n, "batch", "warm", network=network)
                seq = e2e_cell(e2e, rtt, n, "sequential", "warm", network=network)
                if not batch:
                    continue
                speedup = f"{median(seq) / median(batch):.1f}x vs sequential" if seq else "-"
                lines.append(
                    f"| {rtt:g} ms{NETWORK_TITLES[network]} | {n:,} | "
                    + " | ".join(spread(c, unit="ms") if c else "-" for c in cells)
                    + f" | {speedup} |"
                )
        lines.append("")
    lines += known_endpoint_table(e2e, networks)
    lines += [f"![wall time vs N per scenario]({CHART.name})", ""]
    return lines


def known_endpoint_table(e2e: Any, networks: Sequence[tuple[str, float]]) -> list[str]:
    """The batch clients cold beside "known": no connection open, but the endpoint known from
    an earlier batch of the process (its gzip, its limits), against 2 RTT + direct cost."""
    direct = (e2e.get("direct_seconds") or {}).get
    rows = []
    for network, rtt in networks:
        for n in sorted({c["n"] for c in e2e["cells"] if c["variant"] == "known"}):
            for key in ("batch", "batch_async"):
                cold = e2e_cell(e2e, rtt, n, key, "cold", network=network)
                known = e2e_cell(e2e, rtt, n, key, "known", network=network)
                if not (cold and known):
                    continue
                floor = direct(str(n))
                over = (
                    f"{median(cold) / (2 * rtt / 1000 + median(floor)):.2f} / "
                    f"{median(known) / (2 * rtt / 1000 + median(floor)):.2f}"
                    if floor
                    else "-"
                )
                rows.append(
                    f"| {rtt:g} ms{NETWORK_TITLES[network]} | {n:,} | {SHORT[key]} | "
                    f"{spread(cold, unit='ms')} | {spread(known, unit='ms')} | "
                    f"{median(cold) / median(known):.2f} | {over} |"
                )
    if not rows:
        return []
    return [
        "### Cold connection, endpoint known",
        "",
        "No connection open when the clock starts, as cold, but the process's clients know "
        "the endpoint from an earlier batch (whether it takes gzip bodies, its limits): a "
        "long-running service whose idle connection the server closed. The cold runs forget "
        "what is known first, as a new process would.",
        "",
        "| RTT | N | client | cold, ms | known, ms | cold / known "
        "| over 2 RTT + direct cost: cold / known |",
        "|---:|---:|---|---:|---:|---:|---:|",
        *rows,
        "",
    ]


def slow_start_text(e2e: Any) -> list[str]:
    """What the slow-start tables model, and each scenario's bytes against the windows."""
    wire = e2e.get("wire_bytes")
    lines = [
        "The tables marked *TCP slow start* run the same cells through the proxy with "
        "`--slow-start`: each direction of each connection may have only its congestion "
        f"window in flight, {INITIAL_WINDOW} segments of {SEGMENT:,} bytes "
        f"({INITIAL_WINDOW * SEGMENT:,} bytes, RFC 6928) at first, doubling with each round "
        "trip that filled it (no loss); bytes beyond it wait for the next round trip. A "
        "body larger than the first window costs a round trip more, one larger than three "
        "windows two more.",
        "",
    ]
    if not wire:
        return lines
    n = e2e.get("wire_n", 100)
    lines += [
        f"Bytes on the wire for N = {n} (a cold run, counted by the proxy), and the round "
        "trips slow start needs to carry them from a fresh window: all of them for HTTP/2 and "
        "the batches, which send every call at once, and one call's for sequential and 8 "
        "threads, which send one call at a time on each connection:",
        "",
        "| scenario | bytes up | round trips | bytes down | round trips |",
        "|---|---:|---:|---:|---:|",
    ]
    for key in [k for k in SCENARIO_ORDER if k in wire]:
        up, down = wire[key]["up"], wire[key]["down"]
        if key in ONE_EXCHANGE:
            trips = [str(flights(up)), str(flights(down))]
        else:
            trips = [f"{flights(up // n)} a call", f"{flights(down // n)} a call"]
        lines.append(f"| {SHORT[key]} | {up:,} | {trips[0]} | {down:,} | {trips[1]} |")
    return [*lines, ""]


def proxy_accuracy(e2e: Any) -> list[str]:
    calibration = e2e.get("proxy_round_trip_ms")
    if not calibration:
        return []
    parts = [
        f"at {rtt} ms, {median(trips):.2f} ms (min {min(trips):.2f}, max {max(trips):.2f})"
        for rtt, trips in calibration.items()
    ]
    return [
        "What the proxy really adds, measured in the same run (200 bytes to an echo server and "
        "back through the proxy process, 40 times): a round trip takes "
        + "; ".join(parts)
        + ". The excess over the nominal round trip is the event loop's timer granularity "
        "and scheduling on a shared machine.",
        "",
    ]


def section_server(server: Any) -> list[str]:
    if not server:
        return ["## Server side", "", "Not run.", ""]
    lines = [
        "## Server side, in-process",
        "",
        "No sockets: the cost of answering N calls inside one process, for the same calls "
        "four ways: three in the table below, the JSON format (d) in the next. (a) "
        "**direct**: each call's environ built beforehand (Werkzeug's `EnvironBuilder`), "
        "the clock running while it goes through `app.wsgi_app` and its "
        "body is read: Flask's own cost, the floor. (b) **batch**: one `POST /batch` "
        "environ with all N calls in one multipart body (parse, build each part's environ, "
        "run it through `app.wsgi_app`, serialise, stream the answer). (c) **test client**: "
        "`app.test_client()` making the N calls one by one. Rounds alternate a, b, c and d; "
        "b/a is taken within each round, then its median. Garbage collection stays on, as "
        "in a server.",
        "",
        "| N | rounds | (a) direct, µs/request | (b) batch, µs/part | (c) test client, "
        "µs/request | b/a | b - a, µs/part | c/a |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cost in server["costs"]:
        n = cost["n"]
        a, b, c = (median(cost[k]) / n * 1e6 for k in ("direct", "batch", "test_client"))
        r = cost["ratio"]
        lines.append(
            f"| {n:,} | {len(r)} | {spread(cost['direct'], 1e6 / n)} | "
            f"{spread(cost['batch'], 1e6 / n)} | {spread(cost['test_client'], 1e6 / n)} | "
            f"{median(r):.2f} ({min(r):.2f}-{max(r):.2f}) | {b - a:.1f} | {c / a:.2f} |"
        )
    lines += json_format(server)
    scale = server.get("scaling")
    if scale:
        lines += [
            "",
            "### Scaling",
            "",
            "Time per part of the batch endpoint at each N, measured side by side: each of "
            f"{scale['rounds']} rounds answers one batch of the largest N and, right beside "
            "it, several batches of each smaller N (their median); each N's time per part "
            "is divided by N = 100's within the round. Flat (1.00x) means total time linear "
            "in N. (The table above measures each N at another moment, so its columns are "
            "less comparable across rows than this.)",
            "",
            "| N | µs/part | relative to N = 100 |",
            "|---:|---:|---:|",
        ]
        for n, values in scale["per_part_us"].items():
            relative = scale["relative_to_100"][n]
            lines.append(
                f"| {int(n):,} | {spread(values)} | {median(relative):.2f}x "
                f"({min(relative):.2f}-{max(relative):.2f}) |"
            )
    lines += [
        "",
        "### Memory",
        "",
        "Peak memory while one batch is answered, beyond what was in use when it started "
        "(the body itself is already in memory, as a server's input buffer would hold it, "
        "and is not counted). Each case runs in a fresh interpreter; `tracemalloc` counts "
        "Python's allocations, RSS the process's resident memory (peak `VmHWM` reset just "
        "before, and memory freed while the body was built given back first). The 50 MB part "
        "is a `PUT` whose view hashes the body as it streams in, so the view itself keeps no "
        "copy. The 8 MiB JSON batches are the shapes that cost a parser the most per byte "
        "(`json.loads` builds an object per bracket), `PUT`s to the same view: one body "
        "`[[],[],...]` or `[{},{},...]`, or 20,000 requests (the endpoint's `max_parts`) "
        "each with a body `[[],[],...]`. The JSON reader keeps a body of 1 MiB or more in "
        "anonymous memory (`mmap`) while it reads it, which RSS counts and `tracemalloc` "
        "does not. The 128 MiB answers are one `GET` whose view streams its answer in 64 KiB "
        "chunks, through the Flask extension and through the ASGI middleware (answer limits "
        "raised for the occasion). Each ratio is against the larger of the body and the "
        "answer.",
        "",
        "| batch | body | answer | extra peak (tracemalloc) | extra peak (RSS) |",
        "|---|---:|---:|---:|---:|",
    ]
    for case, name in MEMORY_CASES.items():
        traced, rss = memory_of(server, case, "tracemalloc"), memory_of(server, case, "rss")
        if not traced or not rss:
            continue
        body = traced["body_bytes"]
        larger = max(body, traced["answer_bytes"])
        what = "the body" if larger == body else "the answer"

        def cell(result: dict[str, Any], larger: int = larger, what: str = what) -> str:
            extra = result["extra_peak_bytes"]
            return f"{extra / MIB:.2f} MiB ({extra / larger:.3f}x {what})"

        lines.append(
            f"| {name} | {size(body)} | {size(traced['answer_bytes'])} | "
            f"{cell(traced)} | {cell(rss)} |"
        )
    return [*lines, ""]


def section_hostile(hostile: Any) -> list[str]:
    """``bench/results/hostile.json`` (``bench/hostile.py``)."""
    if not hostile:
        return []
    lines = [
        "## Hostile bodies",
        "",
        "Reading a batch body with `RequestReader`, in chunks, side by side with a plain "
        "body of the same size (`bench/hostile.py`). **plain**: one part whose request "
        "carries the body, as a large upload does. **blanks**: a small part, then blanks "
        "(spaces and tabs) after the boundary that ends it, whose line ends only at the end "
        "of the body: the reader holds them as the part's transport padding and walks each "
        "chunk of them once (before issue 11 it walked all of them again for every chunk: "
        "2 MiB took 1.5 s). **near-delimiters**: a part whose content is lines that begin "
        "like its delimiter, one byte more (`\\n--bX`, boundary `b`): each one is found and "
        "refused, the worst shape known for the time per byte (its work is linear too, "
        "`tests/test_linear_time.py`). Limits leave room for every body. Rounds read the "
        "three bodies one after another; the ratios are taken within each round.",
        "",
        "| body | chunks | rounds | plain, ms/MiB | blanks, ms/MiB | blanks / plain | "
        "near-delimiters, ms/MiB | near / plain |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in hostile["cells"]:
        mib = cell["size"] / MIB
        per_mib = {shape: [s / mib for s in values] for shape, values in cell["seconds"].items()}
        blanks, near = cell["ratio"]["blanks"], cell["ratio"]["near"]
        lines.append(
            f"| {cell['size'] // MIB} MiB | {cell['chunk'] // 1024} KiB | "
            f"{len(per_mib['plain'])} | {spread(per_mib['plain'], unit='ms')} | "
            f"{spread(per_mib['blanks'], unit='ms')} | {median(blanks):.2f}x "
            f"({min(blanks):.2f}-{max(blanks):.2f}) | {spread(per_mib['near'], unit='ms')} | "
            f"{ratio(median(near))} |"
        )
    return [*lines, ""]


def json_format(server: Any) -> list[str]:
    """The JSON batch format beside multipart, from the same rounds (older results: none)."""
    costs = [cost for cost in server["costs"] if cost.get("json")]
    if not costs:
        return []
    lines = [
        "",
        "### JSON batches",
        "",
        "(d) **JSON**: the same N calls in one `application/json` batch body (the OData 4.01 "
        '/ Microsoft Graph format: `{"requests": [{"id", "method", "url", '
        '"headers", "body"}]}`, each PATCH body a JSON value), answered in JSON '
        '(`{"responses": [...]}`, each answer\'s body parsed back into a JSON value). Measured '
        "in the same rounds as the table above, right after (a), (b) and (c); d/a is taken "
        "within each round like b/a.",
        "",
        "| N | (a) direct, µs/request | (b) multipart, µs/part | (d) JSON, µs/part | b/a | "
        "d/a | d - a, µs/part | d/b |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cost in costs:
        n = cost["n"]
        a, b, d = (median(cost[k]) / n * 1e6 for k in ("direct", "batch", "json"))
        r, rj = cost["ratio"], cost["json_ratio"]
        lines.append(
            f"| {n:,} | {spread(cost['direct'], 1e6 / n)} | {spread(cost['batch'], 1e6 / n)} | "
            f"{spread(cost['json'], 1e6 / n)} | {median(r):.2f} | "
            f"{median(rj):.2f} ({min(rj):.2f}-{max(rj):.2f}) | {d - a:.1f} | {d / b:.2f} |"
        )
    return lines


def section_parallel(parallel: Any) -> list[str]:
    if not parallel:
        return []
    workers = parallel["workers"]
    lines = [
        "## Parallel execution",
        "",
        "Independent parts of a batch on a thread pool: `add_batch_route(app, max_workers=W, "
        "max_workers_per_request=W)`; with W = 1, the default, parts run one after another "
        "in the server's thread. In-process (`bench/parallel.py`), one app per W, rounds "
        "interleaving every W; every part answered 200 OK.",
        "",
        "### Views that wait",
        "",
        "`GET /wait/<ms>` sleeps, as a view waiting on a database or another service would "
        "(the GIL is free while it waits). **wait20**: 20 parts waiting 10 to 50 ms each "
        f"({sum(parallel['waiting'][0]['waits_ms'])} ms in all). **mixed100**: the workload's "
        "first 80 calls (GETs and PATCHes, CPU only) with the same 20 waiting parts among "
        "them (every fifth part). Wall time of the whole batch; the floor is the waiting "
        "alone, each part started in request order as soon as one of the W threads is free "
        "(as the engine does), at no cost; the speed-up over W = 1 is taken within each round.",
        "",
        "| batch | W | wall time, ms | floor, ms | above the floor, ms | speed-up over W = 1 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for result in parallel["waiting"]:
        for w in workers:
            seconds, speedup = result["seconds"][str(w)], result["speedup"][str(w)]
            floor = result["floor"][str(w)]
            lines.append(
                f"| {result['workload']} ({result['parts']} parts) | {w} | "
                f"{spread(seconds, unit='ms')} | {ms(floor)} | "
                f"{ms(median(seconds) - floor)} | "
                + ("-" if w == 1 else f"{median(speedup):.1f}x")
                + " |"
            )
    costs = parallel.get("thread_cost") or []
    if costs:
        pool = costs[0]["workers"]
        lines += [
            "",
            "### The threads' cost",
            "",
            f"The plain workload (no waiting: pure Python, so the GIL lets one part run at a "
            f"time), W = {pool} against W = 1, side by side: what handing every part to a pool "
            "thread and back costs when there is nothing to overlap. Ratio taken within each "
            "round.",
            "",
            f"| N | rounds | W = 1, µs/part | W = {pool}, µs/part | W = {pool} / W = 1 | "
            "extra, µs/part |",
            "|---:|---:|---:|---:|---:|---:|",
        ]
        for cost in costs:
            n, r = cost["n"], cost["ratio"]
            one, many = (median(cost[k]) / n * 1e6 for k in ("sequential", "pooled"))
            lines.append(
                f"| {n:,} | {len(r)} | {spread(cost['sequential'], 1e6 / n)} | "
                f"{spread(cost['pooled'], 1e6 / n)} | "
                f"{median(r):.2f} ({min(r):.2f}-{max(r):.2f}) | {many - one:.1f} |"
            )
    return [*lines, ""]


def section_async(data: Any) -> list[str]:
    if not data:
        return []
    n, rtt = data["n"], data["rtt_ms"]
    scenarios = data["scenarios"]

    def cell(key: str, variant: str) -> list[float]:
        for c in data["cells"]:
            if (c["scenario"], c["variant"]) == (key, variant):
                return list(c["seconds"])
        return []

    runs = {len(c["seconds"]) for c in data["cells"]}
    lines = [
        f"## Async client: {n} concurrent httpx requests at {rtt:g} ms",
        "",
        f"The same calling code in every scenario (`bench/async_client.py`): `asyncio.gather` "
        f"of {n} `httpx.AsyncClient.request` calls of the workload (half GET, half PATCH with "
        "a JSON body; every answer checked), through the latency proxy; only the client's "
        "transport and protocol change. `AsyncBatchTransport` collects the concurrent calls "
        "into one batch (at most 100 parts, the server's default) without any change to the "
        "calling code. *Cold*: a new client, no connection open (one handshake round trip "
        "charged per new connection); *warm*: the client made the same burst of calls "
        "before the clock starts, so its connections are open (up to 100 for plain "
        "HTTP/1.1, one otherwise). Round trips alone would take "
        f"{2 * rtt:g} ms cold and {rtt:g} ms warm in every scenario (HTTP/1.1 opens its "
        "connections in parallel; HTTP/2 sends every stream at once): the rest is client and "
        "server CPU time (plain HTTP/1.1 measured slower warm than cold in this setup, "
        "where 100 open connections meet gunicorn's 8 threads; not investigated further). "
        "Scenarios interleaved, "
        + (f"{runs.pop()} runs each" if len(runs) == 1 else "several runs each")
        + "; ratios are each median over the batched one's (gunicorn).",
        "",
        "| client | server | cold, ms | vs batched | warm, ms | vs batched |",
        "|---|---|---:|---:|---:|---:|",
    ]
    base = {v: cell("batched", v) for v in ("cold", "warm")}
    for key, scenario in scenarios.items():
        label = scenario["label"].rsplit(" (", 1)[0]
        row = [f"| {label} | {scenario['server']} |"]
        for variant in ("cold", "warm"):
            values = cell(key, variant)
            if not values:
                row.append(" - | - |")
                continue
            versus = ratio(median(values) / median(base[variant])) if base[variant] else "-"
            row.append(f" {spread(values, unit='ms')} | {versus} |")
        lines.append("".join(row))
    return [*lines, ""]


def section_asgi(data: Any) -> list[str]:
    """``bench/results/asgi_cost.json`` (``bench/asgi_cost.py``), when it exists."""
    if not data:
        return []
    lines = [
        "## ASGI middleware: Starlette and FastAPI, in-process",
        "",
        "The same workload served by the same small API written for each ASGI framework "
        "(`bench/asgi_cost.py`), on one event loop, no sockets. (a) **direct**: each call "
        "dispatched into the application, its scope and body prepared beforehand: the "
        "framework's own cost, the floor. (b) **batch**: the N calls in one multipart "
        "`POST /batch` answered by `flask_batch.asgi.BatchMiddleware` around the same "
        "application. b/a is taken within each round. An ASGI call costs a fraction of a "
        "Flask one, so the same batch work weighs more in the ratio than on Flask.",
        "",
    ]
    rows = data.get("results") if isinstance(data, dict) else None
    if not isinstance(rows, list) or not rows:
        return [*lines, "The results file has no rows this report can read.", ""]
    lines += [
        "| framework | N | rounds | (a) direct, µs/call | (b) batch, µs/part | b/a | "
        "b - a, µs/part |",
        "|---|---:|---:|---:|---:|---:|---:|",
    ]
    for row in rows:
        try:
            lines.append(asgi_row(row))
        except (KeyError, TypeError, ValueError, ZeroDivisionError) as error:
            name = row.get("framework", "?") if isinstance(row, dict) else "?"
            lines.append(f"| {name} | unreadable row ({error!r}) | | | | | |")
    return [*lines, ""]


def asgi_row(row: dict[str, Any]) -> str:
    """One row of ``asgi_cost.json``: per-round seconds (``direct``, ``batch``) where given,
    and ``ratio`` per round (a list) or its median (a number); else the µs summaries."""
    n = int(row["n"])
    direct, batch, ratios = row.get("direct"), row.get("batch"), row.get("ratio")
    if isinstance(direct, list) and isinstance(batch, list) and direct and batch:
        a, b = median(direct) / n * 1e6, median(batch) / n * 1e6
        rounds, a_text, b_text = str(len(direct)), spread(direct, 1e6 / n), spread(batch, 1e6 / n)
    else:
        a, b = float(row["direct_us_per_call"]), float(row["batch_us_per_part"])
        rounds, a_text, b_text = "-", us(a), us(b)
    if isinstance(ratios, list) and ratios:
        ratio_text = f"{median(ratios):.2f} ({min(ratios):.2f}-{max(ratios):.2f})"
    elif isinstance(ratios, (int, float)):
        ratio_text = f"{ratios:.2f}"
    else:
        ratio_text = f"{b / a:.2f}"
    cells = [str(row.get("framework", "?")), f"{n:,}", rounds, a_text, b_text, ratio_text]
    return "| " + " | ".join(cells) + f" | {b - a:.1f} |"


def section_alpha(alpha: Any, server: Any) -> list[str]:
    lines = [
        "## The alpha release (flask-batch 0.0.2)",
        "",
        "The baseline users come from, installed from the package index into its own "
        "virtual environment (`bench/.alpha-venv`: it needs Flask 1.1.4, Werkzeug 1.0.1, "
        "Jinja2 < 3, itsdangerous < 2, MarkupSafe 2.0.1 and werkzeug-raw), on the same "
        "application and the same batch bodies, in-process. Its floor is Flask 1.1.4's "
        "direct dispatch. Its answer is rebuilt from scratch after every part, so its "
        "time per part grows with N: N = 1,000 ran once, N = 10,000 (about 50 minutes by "
        "extrapolation) not at all.",
        "",
    ]
    if not alpha or "error" in alpha:
        why = alpha["error"] if alpha else "not run"
        return [*lines, f"Not measured: {why}", ""]
    v = alpha["versions"]
    lines += [
        f"Versions: Python {v['python']}, Flask {v['flask']}, Werkzeug {v['werkzeug']}, "
        f"flask-batch {v['flask-batch']}, werkzeug-raw {v['werkzeug-raw']}.",
        "",
        "| N | runs | alpha batch, µs/part | alpha's floor (Flask 1.1), µs/request | "
        "alpha b/a | this package, µs/part | this package is faster by |",
        "|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for cell in alpha["results"]:
        n = cell["n"]
        if cell["error"] or not cell["batch"]:
            lines.append(f"| {n:,} | - | failed: {cell['error']} | | | | |")
            continue
        ours = cost_of(server, n) if server else None
        alpha_b = median(cell["batch"])
        alpha_a = median(cell["direct"])
        ours_text, faster = "-", "-"
        if ours:
            ours_b = median(ours["batch"])
            ours_text = us(ours_b / n * 1e6)
            faster = ratio(alpha_b / ours_b)
        lines.append(
            f"| {n:,} | {len(cell['batch'])} | {us(alpha_b / n * 1e6)} | "
            f"{us(alpha_a / n * 1e6)} | {alpha_b / alpha_a:.1f} | {ours_text} | {faster} |"
        )
    return [*lines, ""]


def section_profile(profile: Any) -> list[str]:
    if not profile:
        return []
    n = profile["n"]
    lines = [
        "## Where the batch endpoint's time goes",
        "",
        f"Each step of answering a {n:,}-part batch, timed alone (medians, µs per part, no "
        'profiler; `bench/profile.py`; a row "of it" is a share of the row above it). The '
        "steps add up to less than the whole: the rest is streaming the answer through "
        "Flask's response, and garbage collection of the batch's live objects.",
        "",
    ]
    components = profile.get("components")
    if isinstance(components, dict):
        lines += ["| step | µs/part |", "|---|---:|"]
        lines += [f"| {name} | {value:.1f} |" for name, value in components.items()]
    else:
        lines.append(str(components))
    lines += [
        "",
        "cProfile over the same batch (it inflates every Python call, so read these as "
        "shares; built-in calls are counted in their caller): time spent in this package's "
        f"own code, {profile['package_us']:.1f} µs/part, against "
        f"{profile['framework_and_app_in_batch_us']:.1f} µs/part in Flask, Werkzeug and the "
        f"views ({profile['framework_and_app_direct_us']:.1f} µs/request when the same calls "
        "are dispatched directly).",
        "",
        "| module | self, µs/part |",
        "|---|---:|",
    ]
    lines += [f"| `{m['module']}` | {m['self_us']:.1f} |" for m in profile["modules"]]
    lines += ["", "| function | calls/part | self, µs/part | cumulative, µs/part |"]
    lines += ["|---|---:|---:|---:|"]
    lines += [
        f"| `{f['function']}` | {f['calls_per_part']:.1f} | {f['self_us']:.1f} | "
        f"{f['cumulative_us']:.1f} |"
        for f in profile["functions"][:12]
    ]
    lines += [
        "",
        "The sampled call tree (pyinstrument) is in `bench/results/profile-pyinstrument.txt`.",
        "",
    ]
    client = profile.get("client")
    if client:
        default, no_env = client["default"], client["trust_env_false"]
        lines += [
            "### The client's share",
            "",
            f"`flask_batch.client.Batching` making {client['n']} calls against the same app "
            "in-process (a `requests` transport that calls the app; its time is taken out), "
            "µs of CPU time per call, medians. *queue*: `session.request(...)` for each call, "
            "prepared as `requests` prepares it; *send*: `send_batch()` less the server's "
            "time (encode the batch, read the answer, fill every response). "
            "`trust_env = False` skips `requests`' look-ups in the environment (netrc, "
            f"proxies; {client['environment_variables']} environment variables here).",
            "",
            "| session | queue, µs/call | send, µs/call | total for 100 calls |",
            "|---|---:|---:|---:|",
            f"| default | {default['queue_us']:.0f} | {default['send_us']:.0f} | "
            f"{(default['queue_us'] + default['send_us']) * 100 / 1000:.1f} ms |",
            f"| `trust_env = False` | {no_env['queue_us']:.0f} | {no_env['send_us']:.0f} | "
            f"{(no_env['queue_us'] + no_env['send_us']) * 100 / 1000:.1f} ms |",
            "",
        ]
    return lines


def section_httpx_cost(cost: Any) -> list[str]:
    """The httpx transports' own cost per call (``bench/httpx_cost.py``)."""
    if not cost:
        return []
    lines = [
        "### The httpx transports' share",
        "",
        f"{cost['n']} calls of the workload made through `httpx.Client` (queued in a "
        "`BatchTransport.batch(client)` scope) and `httpx.AsyncClient` (`asyncio.gather`, "
        "through `AsyncBatchTransport`), the batch answered by the app in-process (its time "
        "taken out), against the same calls through httpx with a transport that answers "
        "each at once with the app's own answer: httpx's own request handling. Our cost is "
        "the difference, taken within each round; µs per call of the process's CPU time "
        f"(other processes on the machine do not count), each way's fastest of "
        f"{cost.get('repeats', 1)} runs in a round, medians of {cost['rounds']} rounds "
        "(min-max).",
        "",
        "| transport | httpx alone | batched | ours | target |",
        "|---|---:|---:|---:|---:|",
    ]
    for kind, name in (("sync", "`BatchTransport`"), ("async", "`AsyncBatchTransport`")):
        row = cost[kind]
        lines.append(
            f"| {name} | {spread(row['httpx_us'])} | {spread(row['batched_us'])} | "
            f"{spread(row['ours_us'])} | <= {cost['target_us']:g} |"
        )
    return [*lines, ""]


def section_load() -> list[str]:
    path = RESULTS / "load.md"
    if not path.exists():
        return []
    return ["## Load", "", path.read_text().rstrip(), ""]


def write_markdown() -> None:
    machine, steps = load("machine.json"), load("steps.json")
    e2e, server = load("e2e.json"), load("server.json")
    alpha, profile = load("alpha.json"), load("profile.json")
    parallel, async_client = load("parallel.json"), load("async_client.json")
    asgi, hostile = load("asgi_cost.json"), load("hostile.json")
    atomic_groups, gzip = load("groups.json"), load("gzip.json")
    lines = [
        "# Benchmarks",
        "",
        "Generated by `make bench` (`python -m bench`, see `bench/README.md`): do not edit "
        "by hand. Two questions: how much wall time a batch saves a client on a real "
        "network, and what a batch costs the server beyond the application's own work "
        "(multipart and JSON batches, parts in parallel, the ASGI middleware, the alpha "
        "release); and what the async httpx client's auto-batching gains. "
        "Every number is a median over several runs (min-max in brackets), and every "
        "comparison is between runs made side by side in the same `make bench`.",
        "",
    ]
    httpx_cost = load("httpx_cost.json")
    lines += section_targets(
        e2e,
        server,
        hostile=hostile,
        parallel=parallel,
        httpx_cost=httpx_cost,
        asgi=asgi,
        profile=profile,
    )
    lines += section_machine(machine, steps)
    lines += section_e2e(e2e)
    lines += floor.section(load("floor.json"))
    lines += section_server(server)
    lines += section_hostile(hostile)
    lines += compression.section(gzip)
    lines += section_parallel(parallel)
    lines += groups.section(atomic_groups)
    lines += section_async(async_client)
    lines += section_asgi(asgi)
    lines += section_alpha(alpha, server)
    lines += section_profile(profile)
    lines += section_httpx_cost(httpx_cost)
    lines += section_load()
    DOC.parent.mkdir(parents=True, exist_ok=True)
    DOC.write_text("\n".join(lines).rstrip() + "\n")


def draw_chart() -> bool:
    # The tables need no matplotlib (the bench extra), and the tests run without it.
    from matplotlib.figure import Figure  # noqa: PLC0415

    e2e = load("e2e.json")
    if not e2e:
        return False
    rtts = sorted({c["rtt_ms"] for c in e2e["cells"] if c.get("network", "latency") == "latency"})
    ns = sorted({c["n"] for c in e2e["cells"]})
    figure = Figure(figsize=(6 * len(rtts), 4.6))
    axes_list = list(figure.subplots(1, len(rtts), sharey=True, squeeze=False)[0])
    styles = {
        "sequential": ("o-", "tab:red"),
        "threads8": ("s-", "tab:orange"),
        "http2": ("^-", "tab:purple"),
        "batch": ("D-", "tab:green"),
        "batch_hypercorn": ("d--", "tab:olive"),
        "batch_async": ("v--", "tab:cyan"),
    }
    for ax, rtt in zip(axes_list, rtts, strict=True):
        for key in SCENARIO_ORDER:
            points = []
            for n in ns:
                values = e2e_cell(e2e, rtt, n, key)
                if values:
                    points.append((n, median(values), min(values), max(values)))
            if not points:
                continue
            xs = [p[0] for p in points]
            ys = [p[1] * 1000 for p in points]
            low = [(p[1] - p[2]) * 1000 for p in points]
            high = [(p[3] - p[1]) * 1000 for p in points]
            marker, color = styles[key]
            ax.errorbar(
                xs, ys, yerr=[low, high], fmt=marker, color=color, label=SHORT[key], capsize=3
            )
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xticks(ns, [f"{n:,}" for n in ns])
        ax.set_title(f"{rtt:g} ms round trip (cold client)")
        ax.set_xlabel("N calls")
        ax.grid(True, which="both", alpha=0.3)
    axes_list[0].set_ylabel("wall time, ms (median, min-max)")
    axes_list[-1].legend(loc="upper left")
    figure.suptitle("Flask-Batch: N calls through a simulated network (lower is better)")
    figure.tight_layout()
    CHART.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(CHART, dpi=110)
    return True


def main() -> int:
    write_markdown()
    drew = draw_chart()
    print(f"report: {DOC.relative_to(ROOT)}" + (f", {CHART.relative_to(ROOT)}" if drew else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
