"""Every alert generated for the service links to a section of docs/runbook.md that exists."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

RUNBOOK = Path(__file__).resolve().parents[3] / "docs" / "runbook.md"


def test_generated_alerts_point_at_runbook_sections(tmp_path: Path) -> None:
    slo = pytest.importorskip("surefoot.slo")
    from missed_call import observability

    assert observability.FIRST_SMS is not None
    slo.generate([observability.FIRST_SMS], tmp_path)
    rules = "\n".join(p.read_text() for p in (tmp_path / "prometheus" / "rules").glob("*.yml"))
    anchors = set(re.findall(r"runbook_url:\s*['\"]?docs/runbook\.md#([a-z0-9-]+)", rules))
    assert {"slo-first-sms", "outbox-lag", "circuit-breaker-open", "webhook-signature-failures"} <= anchors
    present = set(re.findall(r'<a id="([a-z0-9-]+)"></a>', RUNBOOK.read_text()))
    assert anchors <= present, f"runbook sections missing: {sorted(anchors - present)}"
