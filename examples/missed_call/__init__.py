"""Missed call → first SMS: surefoot's reference service (seed 004, "NeverMissCall").

Processes: ``python -m missed_call migrate`` (release phase), ``web`` (uvicorn, several
workers) and ``worker`` (the outbox dispatcher running the conversation handler, the kill
switch and retention). It imports only surefoot's public API.
"""
