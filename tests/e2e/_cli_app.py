"""A minimal service for ``python -m uvicorn tests.e2e._cli_app:app`` (the usual way to run)."""

import logging

from fastapi import FastAPI

import surefoot

app = FastAPI()
surefoot.install(app)


@app.get("/ping")
async def ping() -> dict[str, str]:
    logging.getLogger("legacy.module").warning("stdlib line for %s", "bob@example.com")
    surefoot.get_logger("svc").info("pong", phone="+33 6 12 34 56 78")
    return {"pong": "ok"}
