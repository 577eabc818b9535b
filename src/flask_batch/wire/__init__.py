"""The batch protocol without I/O: bytes in, values out (the sans-IO core)."""
