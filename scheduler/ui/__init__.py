"""The dashboard at ``/ui``: server-rendered pages (Jinja2) with Plotly charts.

Read-only. The pages read through the same service functions as the JSON endpoints they sit
beside (:mod:`scheduler.ui.api`: ``/savings``, ``/market``, ``/interruptions``, ``/backtests``,
and the API's ``/fleet``, ``/actions``, ``/recommendations``), so every figure shown is the
API's. Plotly's JavaScript is served from the ``plotly`` package: nothing comes from a CDN.
"""

from fastapi import APIRouter

from scheduler.ui import api, pages

router = APIRouter()
router.include_router(api.router)
router.include_router(pages.router)

__all__ = ["router"]
