"""The oracle sync's options, as the command line and the scheduled jobs choose them."""

from __future__ import annotations

from collections.abc import Sequence

from oracle.aws.sync import OracleSyncOptions
from scheduler.config import OracleConfig


def options_from_config(
    settings: OracleConfig,
    *,
    regions: Sequence[str],
    instance_types: Sequence[str],
    days: int,
    kinds: Sequence[str],
) -> OracleSyncOptions:
    """The sync's options: the ``[oracle]`` section with the caller's choices on top."""
    return OracleSyncOptions(
        regions=tuple(regions),
        instance_types=tuple(instance_types),
        days=days,
        product_description=settings.product_description,
        operating_system=settings.operating_system,
        placement_target_capacities=tuple(settings.placement_target_capacities),
        placement_types_per_query=settings.placement_types_per_query,
        max_parallel_regions=settings.max_parallel_regions,
        advisor_url=settings.advisor_url,
        advisor_file=settings.advisor_file,
        pricing_region=settings.pricing_region,
        kinds=tuple(kinds),
    )
