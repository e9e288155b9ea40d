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
from typing import Annotated, Literal, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from oracle.errors import InputError

CONFIG_ENV = "SCHEDULER_CONFIG"
DATABASE_URL_ENV = "SCHEDULER_DATABASE_URL"

#: Upper bounds of the planner's own numbers: ten times the SLO as headroom, and a budget a
#: hundred times the dearest fleet anyone plans (a thousand p5.48xlarge on demand, ~$100/h).
MAX_HEADROOM_FRACTION = 10.0
MAX_BUDGET_USD_PER_HOUR = 10_000_000.0

PositiveFloat = Annotated[float, Field(gt=0)]
PositiveInt = Annotated[int, Field(gt=0)]
NonNegativeFloat = Annotated[float, Field(ge=0)]
NonNegativeInt = Annotated[int, Field(ge=0)]
Fraction = Annotated[float, Field(ge=0, le=1)]


class Section(BaseModel):
    # allow_inf_nan=False: TOML writes inf and nan, and no setting means either.
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


class DatabaseConfig(Section):
    url: str = ""
    data_dir: str = "~/.local/share/spot-scheduler"

    def resolved_url(self) -> str:
        from oracle.db import default_url  # here: reading settings needs no SQLAlchemy

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
    min_window_requests: NonNegativeInt = 32
    request_timeout_s: PositiveFloat = 120.0
    workloads: dict[str, WorkloadConfig] = DEFAULT_WORKLOADS

    @field_validator("workloads", mode="after")
    @classmethod
    def _keep_default_workloads(cls, value: dict[str, WorkloadConfig]) -> dict[str, WorkloadConfig]:
        # Tables in config.toml add to the built-in workloads (a same-named table replaces
        # one), so default_workload stays valid when a user adds a workload of their own.
        return {**DEFAULT_WORKLOADS, **value}


class QuotaConfig(Section):
    spot_g_vt_vcpus: NonNegativeFloat = 1024.0
    spot_p_vcpus: NonNegativeFloat = 1024.0
    on_demand_g_vt_vcpus: NonNegativeFloat = 1024.0
    on_demand_p_vcpus: NonNegativeFloat = 1024.0


class QuotasConfig(QuotaConfig):
    regions: dict[str, QuotaConfig] = {}


class PlannerConfig(Section):
    model: str = "meta-llama/Llama-3.1-8B-Instruct"
    hedge: Literal["auto", "az", "region", "two-az", "none"] = "auto"
    availability_target: Annotated[float, Field(gt=0, lt=1)] = 0.999
    region_correlation: Fraction = 0.5
    deficit_price_multiple: NonNegativeFloat = 10.0
    headroom_fraction: Annotated[float, Field(ge=0, le=MAX_HEADROOM_FRACTION)] = 0.0
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
    budget_usd_per_hour: Annotated[float, Field(ge=0, le=MAX_BUDGET_USD_PER_HOUR)] = 0.0
    regions_allow: list[str] = []
    regions_deny: list[str] = []
    instance_types_allow: list[str] = []
    instance_types_deny: list[str] = []
    staleness_limit_hours: PositiveFloat = 24.0
    unavailable_ttl_s: PositiveFloat = 300.0
    quotas: QuotasConfig = QuotasConfig()


class ServiceSpecConfig(Section):
    """What a replica runs and how it is launched (in the spirit of the seed's sky serve YAML)."""

    model: str = ""
    vllm_args: list[str] = ["--max-model-len", "8192"]
    port: Annotated[int, Field(gt=0, lt=65536)] = 8081
    readiness_path: str = "/v1/chat/completions"
    readiness_message: str = "Hello! What is your name?"
    readiness_timeout_s: PositiveFloat = 900.0
    readiness_interval_s: PositiveFloat = 10.0
    endpoint_template: str = "http://{private_ip}:{port}"
    image_id: str = ""
    launch_template_id: str = ""
    launch_template_version: str = "$Latest"
    subnets: dict[str, str] = {}
    security_group_ids: list[str] = []
    instance_profile_arn: str = ""
    key_name: str = ""
    disk_size_gb: PositiveInt = 512


class ServiceConfig(Section):
    host: str = "127.0.0.1"
    port: Annotated[int, Field(gt=0, lt=65536)] = 8080
    api_token: str = ""
    private_reads: bool = False
    name: str = "llm"
    slo: str = ""
    launch_api: Literal["run-instances", "create-fleet"] = "run-instances"
    on_demand_fallback: bool = True
    target_group_arn: str = ""
    sqs_queue_url: str = ""
    aws_endpoint_url: str = ""
    drain_s: NonNegativeFloat = 30.0
    launch_early_on_rebalance: bool = False
    run_jobs: bool = False
    recommendation_cache_s: PositiveFloat = 60.0
    recommendation_cache_entries: PositiveInt = 256
    max_concurrent_plans: PositiveInt = 2
    plan_in_processes: bool = True
    plan_priority: Literal["idle", "low"] = "idle"
    plan_queue_wait_s: NonNegativeFloat = 2.0
    max_body_bytes: Annotated[int, Field(ge=1024, le=1 << 30)] = 1 << 20
    reports_dir: str = "reports"
    dashboard_slo: str = "500tok/s"
    spec: ServiceSpecConfig = ServiceSpecConfig()


class JobsConfig(Section):
    """Scheduled jobs of `scheduler worker` (and of `serve` when service.run_jobs is true)."""

    enabled: bool = True
    jitter_s: NonNegativeFloat = 30.0
    price_sync_interval_s: PositiveFloat = 3600.0
    placement_scores_interval_s: PositiveFloat = 21600.0
    advisor_interval_s: PositiveFloat = 86400.0
    reconcile_interval_s: PositiveFloat = 120.0
    rebalance_interval_s: PositiveFloat = 900.0
    sqs_poll_interval_s: PositiveFloat = 20.0
    rebalance_min_saving_pct: NonNegativeFloat = 5.0
    rebalance_min_saving_usd_per_hour: NonNegativeFloat = 0.02
    rebalance_min_dwell_s: NonNegativeFloat = 3600.0
    rebalance_max_actions: PositiveInt = 4
    slo_mode: Literal["fixed", "load"] = "fixed"
    load_headroom_fraction: NonNegativeFloat = 0.2
    load_min_tokens_per_second: NonNegativeFloat = 0.0
    load_max_tokens_per_second: NonNegativeFloat = 0.0
    scale_up_delay_s: NonNegativeFloat = 300.0
    scale_down_delay_s: NonNegativeFloat = 1800.0
    lock_key: int = 72150501


#: The policies a backtest compares (what ``--policies`` and ``backtest.policies`` accept). They
#: live here, with the backtest's configuration, so that the command line can name them without
#: importing the planner or the replay.
PolicyName = Literal[
    "planner",
    "planner-nohedge",
    "on-demand",
    "cheapest-zone",
    "spot-hedge",
    "price-capacity",
]
POLICY_NAMES: tuple[str, ...] = get_args(PolicyName)
#: The lower bound, computed beside the policies (see :mod:`scheduler.backtest.simulate`).
HINDSIGHT = "hindsight"


class BacktestConfig(Section):
    """`scheduler backtest`: the replay's defaults and the simulated world's parameters."""

    days: PositiveInt = 90
    tick_s: PositiveFloat = 900.0
    policies: list[PolicyName] = list(get_args(PolicyName))
    seed: int = 0
    startup_s: NonNegativeFloat = 600.0
    drain_s: NonNegativeFloat = 30.0
    planner_interval_s: PositiveFloat = 3600.0
    avoid_after_interruption_s: NonNegativeFloat = 3600.0
    interruption_rate_scale: NonNegativeFloat = 1.0
    near_on_demand_fraction: Annotated[float, Field(ge=0, lt=1)] = 0.8
    at_on_demand_multiplier: Annotated[float, Field(ge=1)] = 10.0
    unknown_band_index: Annotated[int, Field(ge=0, le=4)] = 2
    traces: dict[str, str] = {}
    world: Literal["advisor", "traces", "calibrated"] = "calibrated"
    seeds: PositiveInt = 1
    trace_dir: str = "../shared/data/skypilot-spot-traces/availability/1-node"
    trace_set: str = "aws-02-15-2023"
    untraced: Literal["leave-out", "calibrated"] = "leave-out"
    processes: Annotated[int, Field(ge=1, le=64)] = 1


class Settings(Section):
    database: DatabaseConfig = DatabaseConfig()
    oracle: OracleConfig = OracleConfig()
    bench: BenchConfig = BenchConfig()
    planner: PlannerConfig = PlannerConfig()
    service: ServiceConfig = ServiceConfig()
    jobs: JobsConfig = JobsConfig()
    backtest: BacktestConfig = BacktestConfig()


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
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory, not a config file; {_WHICH}") from None
    except OSError as error:
        raise InputError(
            f"{path}: cannot read the config file ({error.strerror}); {_WHICH}"
        ) from None
    except UnicodeDecodeError as error:
        raise InputError(
            f"{path}: the config file is not UTF-8 text (byte {error.start}); save it as UTF-8 TOML"
        ) from None
    except tomllib.TOMLDecodeError as error:
        raise InputError(f"{path}: not valid TOML ({error})") from None
    except RecursionError:
        raise InputError(f"{path}: not valid TOML (nested too deeply)") from None
    try:
        return Settings.model_validate(raw)
    except ValidationError as error:
        raise InputError(f"{path}: {_describe(error)}") from None


_WHICH = f"pass a TOML file with --config PATH or ${CONFIG_ENV}"


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
    shown = repr(first.get("input"))
    shown = shown if len(shown) <= 60 else shown[:55] + "..."
    return f"key '{key}': {first['msg']} (got {shown})"
