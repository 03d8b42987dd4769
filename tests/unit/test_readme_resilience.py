"""The README's resilience example must run as written."""

import asyncio
import pathlib
import re
import textwrap

README = pathlib.Path(__file__).resolve().parents[2] / "README.md"


def test_readme_policy_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)
    code = next(textwrap.dedent(b) for b in blocks if "surefoot.resilience" in b)
    sent = []

    async def send_sms(to, body):
        sent.append((to, body))
        return "SM123"

    body = "\n".join("    " + line for line in code.splitlines())
    namespace = {"send_sms": send_sms, "to": "+15551234567", "body": "hello"}
    exec(compile(f"async def _example():\n{body}\n    return message\n", "README.md", "exec"), namespace)
    assert asyncio.run(namespace["_example"]()) == "SM123"
    assert sent == [("+15551234567", "hello")]
