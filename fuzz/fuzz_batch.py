"""Coverage-guided fuzzing of the wire core with atheris (libFuzzer for Python).

    python -m fuzz.fuzz_batch [--target all|reader|message|roundtrip|decoder|json]
        [--keep-going] [libFuzzer flags] [corpus directories...]

``make fuzz`` runs it for ``FUZZ_SECONDS``; ``fuzz/README.md`` says what each target checks.
An input that breaks an invariant stops the run with its traceback and is saved as
``crash-<sha1>``: replay it with ``python -m fuzz.fuzz_batch path/to/crash-...``.

With ``--keep-going`` (``make fuzz FUZZ_KEEP_GOING=1``) the run goes on past findings: each
distinct one (the exception's type and where it was raised, in the library and in the target)
is printed once and kept as ``finding-<signature>``, the smallest input seen for it, with its
traceback in ``finding-<signature>.txt``. Timeouts and out-of-memory still stop the run.
"""

from __future__ import annotations

import argparse
import hashlib
import sys
import traceback
from pathlib import Path

import atheris

with atheris.instrument_imports(include=["flask_batch", "fuzz.targets"]):
    from fuzz import targets


def signature(error: BaseException) -> str:
    """What tells one finding from another: the exception type, the line that raised it, and
    the innermost lines of the library and of the targets on the way."""
    frames = traceback.extract_tb(error.__traceback__)
    where = [f"{Path(frames[-1].filename).name}:{frames[-1].lineno}"] if frames else []
    for part in ("flask_batch", "fuzz/targets.py"):
        inside = [frame for frame in frames if part in frame.filename.replace("\\", "/")]
        if inside:
            where.append(f"{Path(inside[-1].filename).name}:{inside[-1].lineno}")
    return " ".join([type(error).__name__, *dict.fromkeys(where)])


class Findings:
    """The distinct findings of a --keep-going run, each with the smallest input seen."""

    def __init__(self, prefix: str) -> None:
        self._prefix = prefix
        self._smallest: dict[str, int] = {}

    def record(self, data: bytes, error: Exception) -> None:
        found = signature(error)
        name = "finding-" + hashlib.sha1(found.encode()).hexdigest()[:10]
        known = self._smallest.get(found)
        if known is not None and known <= len(data):
            return
        self._smallest[found] = len(data)
        report = "".join(traceback.format_exception(error))
        Path(self._prefix + name).write_bytes(data)
        Path(self._prefix + name + ".txt").write_text(f"{found}\n\n{report}")
        if known is None:
            print(f"\n==== {name}: {found} ({len(data)} bytes)\n{report}", file=sys.stderr)


def main() -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--target", choices=["all", *targets.TARGETS], default="all")
    parser.add_argument("--keep-going", action="store_true")
    options, libfuzzer_args = parser.parse_known_args()
    target = None if options.target == "all" else targets.TARGETS[options.target]
    prefixes = [
        arg.partition("=")[2] for arg in libfuzzer_args if arg.startswith("-artifact_prefix=")
    ]
    findings = Findings(prefixes[-1] if prefixes else "") if options.keep_going else None

    def test_one_input(data: bytes) -> None:
        if findings is None:
            targets.check(data, target)
            return
        try:
            targets.check(data, target)
        except Exception as error:  # every exception is a finding to keep
            findings.record(data, error)

    atheris.Setup([sys.argv[0], *libfuzzer_args], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
