"""What ``oracle sync --source aws`` can fetch, by name: kept apart from :mod:`oracle.aws.sync`
so that the command line can name them in its help without loading boto3 or SQLAlchemy."""

from __future__ import annotations

#: Fetched per region, in this order (the catalog first: the others read it).
REGION_KINDS = ("catalog", "spot_prices", "placement_scores", "on_demand_prices", "service_quotas")
#: Fetched once, after the regions.
ADVISOR_KIND = "advisor"
