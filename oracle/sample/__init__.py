"""The embedded sample market: a GPU instance catalog and a deterministic spot market over it.

So that a fresh machine with no AWS credentials can plan. Every row it writes has
source="sample"; every output that uses it says so.
"""

from oracle.sample import catalog
from oracle.sample.ingest import ingest_sample

__all__ = ["catalog", "ingest_sample"]
