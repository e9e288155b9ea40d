"""The one place boto3 clients are built: per service and region, with retries and an endpoint.

Throttling (RequestLimitExceeded, ThrottlingException, ...) is retried by botocore's "standard"
retry mode: truncated exponential backoff with jitter, up to ``max_attempts`` attempts in all,
the first call included (botocore's ``total_max_attempts``).
``endpoint_url`` points every client at one endpoint (moto's server in tests).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

import boto3
from botocore.config import Config

#: Region used for calls that are not about one region (DescribeRegions) when none is given.
DEFAULT_HOME_REGION = "us-east-1"


@dataclass
class AwsClients:
    """Builds and caches boto3 clients; safe to share between threads.

    ``session`` defaults to ``boto3.Session()`` (credentials the usual way: environment, profile,
    instance role). Clients are cached per (service, region, purpose), so a test may wrap a client
    returned here in a botocore Stubber and the sync will use that same client.
    """

    session: boto3.Session | None = None
    endpoint_url: str | None = None
    max_attempts: int = 8
    home_region: str | None = None
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 60.0
    _cache: dict[tuple[str, str, str], Any] = field(default_factory=dict, init=False, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, init=False, repr=False)

    def ec2(self, region: str) -> Any:
        return self.client("ec2", region)

    def spot_placement(self, region: str) -> Any:
        """An EC2 client of its own for GetSpotPlacementScores (the one call moto lacks, so tests
        stub this client alone while the region's other EC2 calls reach moto)."""
        return self.client("ec2", region, purpose="spot-placement")

    def pricing(self, region: str) -> Any:
        """The Pricing API client; the API lives only in a few regions (us-east-1 among them)."""
        return self.client("pricing", region)

    def service_quotas(self, region: str) -> Any:
        return self.client("service-quotas", region)

    def home(self) -> str:
        """The region for account-wide calls: ``home_region``, else the session's, else
        us-east-1."""
        if self.home_region:
            return self.home_region
        return self._session().region_name or DEFAULT_HOME_REGION

    def client(self, service: str, region: str, *, purpose: str = "") -> Any:
        key = (service, region, purpose)
        with self._lock:
            # boto3 sessions are not thread-safe when creating clients; the clients are.
            if key not in self._cache:
                self._cache[key] = self._session().client(
                    service,  # type: ignore[call-overload]
                    region_name=region,
                    endpoint_url=self.endpoint_url,
                    config=self.config(),
                )
            return self._cache[key]

    def config(self) -> Config:
        return Config(
            retries={"total_max_attempts": self.max_attempts, "mode": "standard"},
            connect_timeout=self.connect_timeout_s,
            read_timeout=self.read_timeout_s,
        )

    def _session(self) -> boto3.Session:
        if self.session is None:
            self.session = boto3.Session()
        return self.session
