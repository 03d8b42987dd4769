"""Handlers imported by `surefoot outbox run --import` in the CLI test."""

import os

from surefoot import outbox

router = outbox.Router()


@router.handler("CliEvent")
def record(event: outbox.Event) -> None:
    with open(os.environ["CLI_TEST_OUT"], "a") as fh:
        fh.write(f"{event.payload['n']}\n")
