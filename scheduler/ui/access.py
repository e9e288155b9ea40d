"""Who may see the pages. With ``service.private_reads`` the pages need the API token, given as
``Authorization: Bearer TOKEN`` or, from a browser, through the sign-in form, which keeps it in
an HttpOnly, SameSite=Strict cookie scoped to ``/ui``. Mutations never read that cookie: the
backtest form asks for the token each time (so no other site can post it on the user's behalf).
"""

from __future__ import annotations

import hmac

from fastapi import Request

from scheduler.api.context import ApiContext

COOKIE = "scheduler_token"


class SignInRequired(Exception):
    """The page needs the token and the request carries none that matches."""

    def __init__(self, wrong: bool) -> None:
        super().__init__("sign in with the API token")
        self.wrong = wrong


def check_read(request: Request, context: ApiContext) -> None:
    if not context.settings.service.private_reads:
        return
    given = _bearer(request) or request.cookies.get(COOKIE, "")
    if not token_matches(context, given):
        raise SignInRequired(wrong=bool(given))


def token_matches(context: ApiContext, given: str) -> bool:
    """The configured token equals ``given`` (constant time); never true when none is set."""
    expected = context.api_token
    return bool(expected) and hmac.compare_digest(given.encode(), expected.encode())


def _bearer(request: Request) -> str:
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return value.strip() if scheme.lower() == "bearer" else ""
