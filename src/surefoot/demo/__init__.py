"""The demo service (grown into the reference service: missed call → first SMS)."""

from __future__ import annotations


def run(host: str = "127.0.0.1", port: int = 8000) -> None:
    """Start the demo service on uvicorn."""
    raise NotImplementedError("the demo service is being built")
