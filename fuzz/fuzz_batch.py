"""Coverage-guided fuzzing of the wire core with atheris (libFuzzer for Python).

    python -m fuzz.fuzz_batch [--target all|reader|message|roundtrip|decoder] [libFuzzer flags]
        [corpus directories...]

``make fuzz`` runs it for ``FUZZ_SECONDS``; ``fuzz/README.md`` says what each target checks.
An input that breaks an invariant stops the run with its traceback and is saved as
``crash-<sha1>``: replay it with ``python -m fuzz.fuzz_batch path/to/crash-...``.
"""

from __future__ import annotations

import argparse
import sys

import atheris

with atheris.instrument_imports(include=["flask_batch", "fuzz.targets"]):
    from fuzz import targets


def main() -> None:
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--target", choices=["all", *targets.TARGETS], default="all")
    parser.add_argument(
        "--tolerate",
        default="",
        help=f"comma-separated known findings to go past: {', '.join(targets.KNOWN)}",
    )
    options, libfuzzer_args = parser.parse_known_args()
    for name in filter(None, options.tolerate.split(",")):
        if name not in targets.KNOWN:
            parser.error(f"unknown finding {name!r}: known are {', '.join(targets.KNOWN)}")
        targets.tolerated.add(name)
    target = None if options.target == "all" else targets.TARGETS[options.target]

    def test_one_input(data: bytes) -> None:
        targets.check(data, target)

    atheris.Setup([sys.argv[0], *libfuzzer_args], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
