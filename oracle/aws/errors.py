"""One-line descriptions of what went wrong in an AWS call, for ``ingest_runs.error``."""

from __future__ import annotations

from botocore.exceptions import ClientError


def describe_error(error: BaseException) -> str:
    """``Code: message`` for an AWS error, ``Type: message`` for anything else; one line."""
    if isinstance(error, ClientError):
        detail = error.response.get("Error", {})
        text = f"{detail.get('Code', 'ClientError')}: {detail.get('Message') or error}"
    else:
        text = f"{type(error).__name__}: {error}"
    return " ".join(text.split())[:1000]
