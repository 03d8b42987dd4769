"""Signed-webhook verification and the idempotent inbox."""

__all__: list[str] = []
