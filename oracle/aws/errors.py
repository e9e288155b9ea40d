"""One-line descriptions of what went wrong in an AWS call, for ``ingest_runs.error``."""

from __future__ import annotations

from botocore.exceptions import BotoCoreError, ClientError

#: Error codes that mean the region cannot be used by these credentials at all.
REGION_UNUSABLE_CODES = frozenset(
    {
        "AuthFailure",
        "OptInRequired",
        "UnauthorizedOperation",
        "InvalidClientTokenId",
        "UnrecognizedClientException",
        "AccessDenied",
        "AccessDeniedException",
    }
)


def describe_error(error: BaseException) -> str:
    """``Code: message`` for an AWS error, ``Type: message`` for anything else; one line."""
    if isinstance(error, ClientError):
        detail = error.response.get("Error", {})
        code = detail.get("Code", "ClientError")
        message = detail.get("Message") or str(error)
        text = f"{code}: {message}"
    elif isinstance(error, BotoCoreError):
        text = f"{type(error).__name__}: {error}"
    else:
        text = f"{type(error).__name__}: {error}"
    return " ".join(text.split())[:1000]


def error_code(error: BaseException) -> str | None:
    if isinstance(error, ClientError):
        return str(error.response.get("Error", {}).get("Code")) or None
    return None
