"""The alpha release, ``flask-batch==0.0.2``, on the same workload: the baseline users come from.

It needs Flask 1.1, so it gets its own virtual environment, ``bench/.alpha-venv``, created
here on first use with the versions it requires (Flask 1.1.4, Werkzeug 1.0.1, Jinja2 < 3,
itsdangerous < 2, MarkupSafe 2.0.1, and ``werkzeug-raw``) from the package index. The
measurement itself runs in that environment (``bench/alpha_worker.py``), on the same
application and the same batch bodies as ``bench.server_cost``. Its server is quadratic in
the number of parts, so N = 1,000 runs once and N = 10,000 (about 50 minutes by
extrapolation) not at all.

Run ``python -m bench.alpha``; results go to ``bench/results/alpha.json``.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
import venv
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"
VENV = ROOT / "bench" / ".alpha-venv"
REQUIREMENTS = [
    "flask-batch==0.0.2",
    "Flask==1.1.4",
    "Werkzeug==1.0.1",
    "Jinja2<3",
    "itsdangerous<2",
    "MarkupSafe==2.0.1",
    "werkzeug-raw",
]
NS = (10, 100, 1000)
ROUNDS = (20, 5, 1)


def python() -> Path:
    return VENV / "bin" / "python"


def ensure_venv(log: Any = print) -> None:
    """Create the alpha's environment unless it is there with the alpha installed."""
    marker = VENV / ".installed"
    if marker.exists() and marker.read_text() == "\n".join(REQUIREMENTS):
        return
    log(f"  creating {VENV.relative_to(ROOT)} with {', '.join(REQUIREMENTS)}")
    venv.EnvBuilder(with_pip=True, clear=True).create(VENV)
    pip = [str(python()), "-m", "pip", "install", "--quiet", "--disable-pip-version-check"]
    done = subprocess.run(pip + REQUIREMENTS, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise OSError(f"pip install exited with {done.returncode}: {done.stderr[-2000:]}")
    marker.write_text("\n".join(REQUIREMENTS))


def run(log: Any = print) -> dict[str, Any]:
    try:
        ensure_venv(log)
    except OSError as error:
        return {"error": f"could not install the alpha: {error}"}
    args = [str(python()), "-m", "bench.alpha_worker", "--n", *map(str, NS)]
    args += ["--rounds", *map(str, ROUNDS)]
    done = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        return {"error": f"the alpha failed (exit {done.returncode}): {done.stderr[-2000:]}"}
    result: dict[str, Any] = json.loads(done.stdout.splitlines()[-1])
    for cell in result["results"]:
        batch = sorted(cell["batch"])[len(cell["batch"]) // 2] if cell["batch"] else float("nan")
        direct = sorted(cell["direct"])[len(cell["direct"]) // 2] if cell["direct"] else 0.0
        log(
            f"  alpha N={cell['n']:<5} direct {direct / cell['n'] * 1e6:8.1f} us/req  "
            f"batch {batch / cell['n'] * 1e6:9.1f} us/part  {cell['error'] or ''}"
        )
    return result


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.alpha", description=__doc__)
    parser.add_argument("--out", type=Path, default=RESULTS / "alpha.json")
    args = parser.parse_args(argv)
    started = time.perf_counter()
    result = run()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(f"alpha: {time.perf_counter() - started:.0f} s, written to {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
