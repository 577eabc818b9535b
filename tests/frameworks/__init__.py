"""Applications in other frameworks (Django, Falcon, FastAPI, Starlette, Quart, Litestar) and
the helpers that drive them, for the WSGI and ASGI middleware tests."""
