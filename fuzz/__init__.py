"""Coverage-guided fuzzing of the sans-IO wire core (``fuzz/README.md`` says how to run it)."""
