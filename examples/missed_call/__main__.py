"""``python -m missed_call migrate | web | worker | add-tenant`` (run with ``examples`` on the path)."""

from __future__ import annotations

import argparse
import asyncio
import sys


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m missed_call", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("migrate", help="create the tables (release phase)")
    web = sub.add_parser("web", help="serve the web process on uvicorn")
    web.add_argument("--host", default="127.0.0.1")
    web.add_argument("--port", type=int, default=8000)
    web.add_argument("--workers", type=int, default=1)
    sub.add_parser("worker", help="run the dispatcher, kill switch, heartbeat and retention")
    tenant = sub.add_parser("add-tenant", help="register a tenant and its number")
    tenant.add_argument("tenant_id")
    tenant.add_argument("phone")
    tenant.add_argument("--business-name", default="Acme Plumbing")
    tenant.add_argument("--template", default="Sorry we missed your call! {business_name} will text you here shortly.")
    tenant.add_argument("--compliance", default="approved", choices=["pending", "approved", "rejected"])
    args = parser.parse_args(argv)

    if args.command == "migrate":
        from .worker import migrate

        migrate()
    elif args.command == "worker":
        from .worker import main as worker_main

        worker_main()
    elif args.command == "web":
        import os

        import uvicorn

        here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
        uvicorn.run("missed_call.app:app", host=args.host, port=args.port, workers=args.workers,
                    app_dir=here, log_config=None, access_log=False, lifespan="on")
    elif args.command == "add-tenant":
        from .seed import add_tenant

        asyncio.run(add_tenant(args.tenant_id, args.phone, business_name=args.business_name,
                               template=args.template, compliance=args.compliance))
    return 0


if __name__ == "__main__":
    sys.exit(main())
