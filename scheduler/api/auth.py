"""Bearer-token auth: required on every endpoint that changes anything, optional on reads.

The dependencies are ``async`` because they do no I/O: FastAPI would otherwise run each in the
thread pool, one hop per dependency per request (measured with benchmarks.api).
"""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from scheduler.api.context import ApiContext
from scheduler.api.errors import ApiError

_bearer = HTTPBearer(auto_error=False, description="service.api_token or $SCHEDULER_API_TOKEN")


async def get_context(request: Request) -> ApiContext:
    context: ApiContext = request.app.state.context
    return context


ContextDep = Annotated[ApiContext, Depends(get_context)]
Credentials = Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)]


async def require_token(context: ContextDep, credentials: Credentials) -> None:
    """Refuse the request unless it carries the configured token (compared in constant time)."""
    expected = context.api_token
    if not expected:
        raise ApiError(
            403,
            "token_not_configured",
            "this endpoint changes the fleet and no API token is configured; set "
            "service.api_token in config.toml or SCHEDULER_API_TOKEN",
        )
    given = credentials.credentials if credentials else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        raise ApiError(401, "unauthorized", "missing or wrong bearer token")


async def require_read_token(context: ContextDep, credentials: Credentials) -> None:
    if context.settings.service.private_reads:
        await require_token(context, credentials)


WriteAuth = Depends(require_token)
ReadAuth = Depends(require_read_token)
