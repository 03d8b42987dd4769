"""The service's runtime flags (defaults from the environment, flipped at run time)."""

from __future__ import annotations

from surefoot import flags

PAUSE_OUTBOUND_SMS = flags.Flag(
    "pause_outbound_sms", default=False, env="PAUSE_OUTBOUND_SMS",
    description="kill switch: outbound SMS wait (never dropped) and are sent once it is off",
)
