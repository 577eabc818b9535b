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
        help=f"known findings to go past, comma-separated, or all: {', '.join(targets.KNOWN)}",
    )
    options, libfuzzer_args = parser.parse_known_args()
    names = targets.KNOWN if options.tolerate == "all" else options.tolerate.split(",")
    for name in filter(None, names):
        try:
            targets.tolerate(name)
        except ValueError as error:
            parser.error(str(error))
    target = None if options.target == "all" else targets.TARGETS[options.target]

    def test_one_input(data: bytes) -> None:
        targets.check(data, target)

    atheris.Setup([sys.argv[0], *libfuzzer_args], test_one_input)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
