"""The client's core: everything about a batch exchange, with no I/O.

It imports the standard library and :mod:`flask_batch.wire` only: no sockets, no threads,
no event loop, neither ``requests`` nor ``httpx``. The drivers (:mod:`.._drivers`) do the
I/O for it, the front ends (:mod:`..requests`, :mod:`..httpx`) adapt a library to it.
"""
