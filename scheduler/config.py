"""Configuration: ``config.toml`` loaded once with tomllib, validated, and passed down.

The file is chosen by ``--config PATH``, else ``SCHEDULER_CONFIG``, else ``./config.toml`` when
it exists; otherwise the defaults below apply (the repository's ``config.toml`` documents each
key and holds exactly these defaults). ``SCHEDULER_DATABASE_URL`` overrides ``database.url``.
Unknown keys and wrong types are refused with the key's dotted name.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from oracle.db import default_url
from oracle.errors import InputError

CONFIG_ENV = "SCHEDULER_CONFIG"
DATABASE_URL_ENV = "SCHEDULER_DATABASE_URL"

PositiveFloat = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True)


class DatabaseConfig(Section):
    url: str = ""
    data_dir: str = "~/.local/share/spot-scheduler"

    def resolved_url(self) -> str:
        return os.environ.get(DATABASE_URL_ENV) or self.url or default_url(Path(self.data_dir))


class OracleConfig(Section):
    regions: list[str] = []
    instance_types: list[str] = []
    history_days: PositiveInt = 90
    product_description: str = "Linux/UNIX"
    operating_system: str = "Linux"
    placement_target_capacities: list[PositiveInt] = [1, 4, 16]
    placement_types_per_query: Annotated[int, Field(ge=3, le=10)] = 3
    max_parallel_regions: PositiveInt = 8
    max_attempts: PositiveInt = 8
    advisor_url: str = "https://spot-bid-advisor.s3.amazonaws.com/spot-advisor-data.json"
    advisor_file: str = ""
    pricing_region: str = "us-east-1"
    sample_seed: int = 2026


class MixItem(Section):
    input_tokens: PositiveInt
    output_tokens: PositiveInt
    weight: PositiveFloat = 1.0


class WorkloadConfig(Section):
    version: PositiveInt = 1
    kind: Literal["fixed", "mix", "sharegpt"] = "fixed"
    api: Literal["chat", "completions"] = "chat"
    input_tokens: int = 0
    output_tokens: int = 0
    mix: list[MixItem] = []
    path: str = ""
    description: str = ""


DEFAULT_WORKLOADS = {
    # Role-play chat: long conversation history in, a short reply out.
    "chat-mix-v1": WorkloadConfig(
        version=1,
        kind="mix",
        api="chat",
        mix=[
            MixItem(input_tokens=512, output_tokens=128, weight=0.3),
            MixItem(input_tokens=1536, output_tokens=256, weight=0.5),
            MixItem(input_tokens=3072, output_tokens=256, weight=0.2),
        ],
        description="role-play chat: long history in, short replies out",
    ),
    "fixed-1024-256-v1": WorkloadConfig(
        version=1, kind="fixed", api="completions", input_tokens=1024, output_tokens=256
    ),
}


class BenchConfig(Section):
    default_workload: str = "chat-mix-v1"
    ttft_p95_ms: PositiveFloat = 2000.0
    tpot_p95_ms: PositiveFloat = 100.0
    max_error_rate: Fraction = 0.01
    max_concurrency: PositiveInt = 256
    requests_per_point: PositiveInt = 64
    request_timeout_s: PositiveFloat = 120.0
    workloads: dict[str, WorkloadConfig] = DEFAULT_WORKLOADS


class QuotaConfig(Section):
    spot_g_vt_vcpus: NonNegativeFloat = 1024.0
    spot_p_vcpus: NonNegativeFloat = 1024.0
    on_demand_g_vt_vcpus: NonNegativeFloat = 1024.0
    on_demand_p_vcpus: NonNegativeFloat = 1024.0


class QuotasConfig(QuotaConfig):
    regions: dict[str, QuotaConfig] = {}


class PlannerConfig(Section):
    model: str = "meta-llama/Llama-3.1-8B-Instruct"
    hedge: Literal["az", "region", "none"] = "az"
    headroom_fraction: NonNegativeFloat = 0.0
    spot_price_estimator: Literal["current", "mean-7d", "max-current-mean-7d", "p95-30d"] = (
        "max-current-mean-7d"
    )
    replacement_time_s: NonNegativeFloat = 600.0
    startup_time_s: NonNegativeFloat = 600.0
    horizon_hours: PositiveFloat = 24.0
    min_placement_score: Annotated[int, Field(ge=1, le=10)] = 5
    default_spot_cap: PositiveInt = 4
    markets: Literal["any", "spot", "on-demand"] = "any"
    max_pool_share: Fraction = 1.0
    budget_usd_per_hour: NonNegativeFloat = 0.0
    regions_allow: list[str] = []
    regions_deny: list[str] = []
    instance_types_allow: list[str] = []
    instance_types_deny: list[str] = []
    staleness_limit_hours: PositiveFloat = 24.0
    unavailable_ttl_s: PositiveFloat = 300.0
    quotas: QuotasConfig = QuotasConfig()


class ServiceConfig(Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(gt=0, lt=65536)] = 8080
    api_token: str = ""
    private_reads: bool = False


class Settings(Section):
    database: DatabaseConfig = DatabaseConfig()
    oracle: OracleConfig = OracleConfig()
    bench: BenchConfig = BenchConfig()
    planner: PlannerConfig = PlannerConfig()
    service: ServiceConfig = ServiceConfig()


def load_settings(path: Path | None = None) -> Settings:
    """Load and validate the configuration; raise :class:`InputError` naming the bad key."""
    path = _choose_file(path)
    if path is None:
        return Settings()
    try:
        with path.open("rb") as handle:
            raw = tomllib.load(handle)
    except FileNotFoundError:
        raise InputError(f"{path}: config file not found; pass an existing --config PATH") from None
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{path}: not valid TOML ({error})") from None
    try:
        return Settings.model_validate(raw)
    except ValidationError as error:
        raise InputError(f"{path}: {_describe(error)}") from None


def _choose_file(path: Path | None) -> Path | None:
    if path is not None:
        return path
    if env := os.environ.get(CONFIG_ENV):
        return Path(env)
    local = Path("config.toml")
    return local if local.is_file() else None


def _describe(error: ValidationError) -> str:
    first = error.errors()[0]
    key = ".".join(str(part) for part in first["loc"])
    if first["type"] == "extra_forbidden":
        return f"unknown key '{key}'; remove it or check its spelling against config.toml"
    return f"key '{key}': {first['msg']} (got {first.get('input')!r})"
