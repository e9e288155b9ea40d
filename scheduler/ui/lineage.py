"""The planner's document behind a stored plan. A fallback plan (the actuator's answer to an
interruption or a capacity error) stores only ``{"fallback_of": id, "reason": ...}``: its why,
baselines and data are those of the plan it was derived from, followed back to the planner's."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from scheduler.models import PlanModel

#: Fallbacks of fallbacks followed at most this far (a guard against a malformed cycle).
MAX_HOPS = 50


def planner_document(session: Session, document: dict[str, Any] | None) -> dict[str, Any] | None:
    """``document`` when the planner wrote it, else that of the plan it falls back from."""
    seen = 0
    while document is not None and "cost_usd_per_hour" not in document and seen < MAX_HOPS:
        parent = document.get("fallback_of")
        if not isinstance(parent, int):
            return None
        plan = session.get(PlanModel, parent)
        document = plan.document if plan is not None else None
        seen += 1
    return document if document is not None and "cost_usd_per_hour" in document else None
