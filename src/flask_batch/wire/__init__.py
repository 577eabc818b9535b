"""The batch protocol without I/O: bytes in, values out (the sans-IO core)."""

__all__: list[str] = []  # each module declares its own
