"""The HTTP service: `tasteprint serve` runs `create_app` on uvicorn (JSON routes under /v1, metrics,
and the profile page at /)."""

from .app import create_app

__all__ = ["create_app"]
