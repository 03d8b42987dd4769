"""The dispatcher process: delivers SmsReceived events, calling the provider over HTTP."""

from __future__ import annotations

import asyncio
import os
import sys
from typing import Any

from surefoot import tracing
from surefoot.resilience import aprovider_client, http_policy
from surefoot.testing import adrain


async def main(expected: int) -> int:
    tracing.setup_tracing()  # OTEL_EXPORTER_OTLP_* from the environment
    client = aprovider_client("twilio", base_url=os.environ["TEST_PROVIDER_URL"],
                              policy=http_policy("twilio", base_delay=0.05, max_delay=0.1))
    delivered = 0

    async def first_reply(event: Any) -> None:
        with tracing.span("conversation.first_reply", event_id=event.event_id):
            response = await client.post("/Accounts/AC1/Messages.json", data={"Body": "thanks"})
            response.raise_for_status()

    if expected == 0:  # one delivery attempt, expected to fail
        await adrain(os.environ["TEST_DB_URL"], handlers={"SmsReceived": first_reply})
        await client.aclose()
        tracing.shutdown_tracing()
        return 0
    for _ in range(200):
        result = await adrain(os.environ["TEST_DB_URL"], handlers={"SmsReceived": first_reply})
        delivered += result if isinstance(result, int) else len(result.delivered)
        if delivered >= expected:
            break
        await asyncio.sleep(0.05)  # waiting for the web process's commit
    await client.aclose()
    tracing.shutdown_tracing()  # flush before the process ends
    return 0 if delivered >= expected else 1


if __name__ == "__main__":
    sys.exit(asyncio.run(main(int(sys.argv[1]))))
