"""The daemon's configuration: one YAML file, validated at start, every error with its path."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from veilleur.rules.loader import load_rule_set
from veilleur.rules.metric_spec import MetricRule
from veilleur.rules.spec import Rule
from veilleur.validation import ConfigError, Duration, pydantic_messages

_REGION = re.compile(r"^[a-z]{2}(-[a-z]+)+-\d$")
_ACCOUNT = re.compile(r"^\d{12}$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
_SEVERITIES = Literal["info", "low", "medium", "high", "critical"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


GLOBAL_REGION = "us-east-1"  # where CloudTrail records IAM, STS and console sign-in events


class AccountConfig(_Strict):
    id: str | None = None  # None: the ambient credentials' account (asked of STS)
    role_arn: str | None = None
    external_id: str | None = None
    regions: list[str] | None = None  # None: the top-level list

    @field_validator("id")
    @classmethod
    def _acct(cls, v: str | None) -> str | None:
        if v is not None and not _ACCOUNT.match(v):
            raise ValueError(f'account id must be 12 digits, got "{v}"')
        return v

    @field_validator("role_arn")
    @classmethod
    def _arn(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^arn:aws[a-z-]*:iam::\d{12}:role/.+$", v):
            raise ValueError(f'not an IAM role ARN: "{v}"')
        return v


def _check_regions(v: list[str]) -> list[str]:
    bad = [r for r in v if not _REGION.match(r)]
    if bad:
        raise ValueError(f"not an AWS region: {', '.join(repr(b) for b in bad)}")
    if len(set(v)) != len(v):
        raise ValueError("regions listed twice")
    return v


class CloudTrailConfig(_Strict):
    enabled: bool = True
    poll_interval: Duration = Field(default=timedelta(seconds=30))
    lateness: Duration = Field(default=timedelta(minutes=15))
    max_requests_per_second: float = Field(default=1.5, gt=0, le=2.0)
    max_pages_per_poll: int = Field(default=200, ge=1)
    # Every sweep_interval, also re-read [now - sweep_lateness, now - lateness) for events
    # shown later than `lateness`; 0s disables.
    sweep_lateness: Duration = Field(default=timedelta(hours=1))
    sweep_interval: Duration = Field(default=timedelta(minutes=5))
    # Pages a sweep reads per poll at most; it resumes at the next poll.
    sweep_max_pages_per_poll: int = Field(default=40, ge=1)

    @model_validator(mode="after")
    def _sweep(self) -> CloudTrailConfig:
        if self.sweep_lateness and self.sweep_lateness <= self.lateness:
            raise ValueError(
                "sweep_lateness must be longer than lateness (or 0s to disable the late sweep)"
            )
        return self


class CloudWatchConfig(_Strict):
    enabled: bool = True
    poll_interval: Duration = Field(default=timedelta(seconds=60))
    delay: Duration = Field(default=timedelta(minutes=2))


class SnsSinkConfig(_Strict):
    name: str
    topic_arn: str
    mode: Literal["json", "attributes"] = "json"
    min_severity: _SEVERITIES = "info"

    @field_validator("topic_arn")
    @classmethod
    def _arn(cls, v: str) -> str:
        if not re.match(r"^arn:aws[a-z-]*:sns:[a-z0-9-]+:\d{12}:[A-Za-z0-9_-]{1,256}$", v):
            raise ValueError(f'not an SNS topic ARN: "{v}"')
        return v


class EventBridgeSinkConfig(_Strict):
    name: str
    bus: str = "default"
    source: str = "veilleur"
    min_severity: _SEVERITIES = "info"
    region: str | None = None


class SinksConfig(_Strict):
    sns: list[SnsSinkConfig] = Field(default_factory=list)
    eventbridge: list[EventBridgeSinkConfig] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> SinksConfig:
        names = [s.name for s in self.sns] + [s.name for s in self.eventbridge]
        for n in names:
            if not _NAME.match(n):
                raise ValueError(f'sink name "{n}" must be lowercase letters, digits, - or _')
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"sink names must be unique: {', '.join(sorted(dup))}")
        return self


class NotifyConfig(_Strict):
    drain_interval: Duration = Field(default=timedelta(seconds=5))
    retry_base: Duration = Field(default=timedelta(seconds=5))
    retry_cap: Duration = Field(default=timedelta(minutes=10))
    dead_letter_after: Duration = Field(default=timedelta(hours=24))
    max_alerts_per_rule: int = Field(default=10, ge=1)
    max_alerts_per_sink: int = Field(default=30, ge=1)
    rate_window: Duration = Field(default=timedelta(minutes=5))


class MetricsConfig(_Strict):
    listen: str = "127.0.0.1:9108"

    @field_validator("listen")
    @classmethod
    def _hostport(cls, v: str) -> str:
        host, _, port = v.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) < 65536:
            raise ValueError(f'expected HOST:PORT, got "{v}"')
        return v


class LogConfig(_Strict):
    level: Literal["debug", "info", "warning", "error"] = "info"
    format: Literal["auto", "json", "console"] = "auto"


class ConfigModel(_Strict):
    rules: list[str] = Field(default_factory=lambda: ["builtin:cis", "builtin:essentials"])
    disable: list[str] = Field(default_factory=list)  # rule ids not to run (e.g. pack overlaps)
    state_dir: str = "/var/lib/veilleur"
    regions: list[str] = Field(default_factory=lambda: ["us-east-1"])
    accounts: list[AccountConfig] = Field(default_factory=lambda: [AccountConfig()])
    cloudtrail: CloudTrailConfig = Field(default_factory=CloudTrailConfig)
    cloudwatch: CloudWatchConfig = Field(default_factory=CloudWatchConfig)
    sinks: SinksConfig = Field(default_factory=SinksConfig)
    notify: NotifyConfig = Field(default_factory=NotifyConfig)
    metrics: MetricsConfig = Field(default_factory=MetricsConfig)
    log: LogConfig = Field(default_factory=LogConfig)

    @field_validator("regions")
    @classmethod
    def _regions(cls, v: list[str]) -> list[str]:
        if not v:
            raise ValueError("at least one region is required")
        return _check_regions(v)

    @model_validator(mode="after")
    def _accounts(self) -> ConfigModel:
        for i, acct in enumerate(self.accounts):
            if acct.regions is not None:
                try:
                    _check_regions(acct.regions)
                except ValueError as exc:
                    raise ValueError(f"accounts[{i}].regions: {exc}") from exc
        return self


@dataclass(frozen=True)
class Config:
    """A validated configuration and the rules it names, loaded and compiled."""

    model: ConfigModel
    rules: tuple[Rule, ...]  # event rules (CloudTrail)
    path: Path | None
    metric_rules: tuple[MetricRule, ...] = ()

    @property
    def warnings(self) -> tuple[str, ...]:
        """Valid but probably not what the operator meant: said by ``check`` and at start."""
        m = self.model
        out: list[str] = []
        if m.cloudtrail.enabled and self.rules:
            for i, acct in enumerate(m.accounts):
                regions = acct.regions if acct.regions is not None else m.regions
                if GLOBAL_REGION not in regions:
                    where = "regions" if acct.regions is None else f"accounts[{i}].regions"
                    out.append(
                        f"{where}: {GLOBAL_REGION} is not polled: IAM, STS and console sign-in "
                        "events are recorded there, so rules about them would see nothing"
                    )
        if not m.sinks.sns and not m.sinks.eventbridge:
            out.append("sinks: none configured: alerts are only logged")
        return tuple(out)


def parse_config(data: Any, origin: str = "config") -> ConfigModel:
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise ConfigError([f"{origin}: expected a mapping at the top level"])
    try:
        return ConfigModel.model_validate(data)
    except ValidationError as exc:
        raise ConfigError([f"{origin}: {m}" for m in pydantic_messages(exc)]) from exc


def load_config(path: Path | None) -> Config:
    """Read, validate and load rules; raise ConfigError with every problem at once."""
    origin = str(path) if path else "(defaults)"
    data: Any = {}
    if path is not None:
        try:
            data = yaml.safe_load(path.read_text("utf-8"))
        except OSError as exc:
            raise ConfigError([f"{origin}: cannot read: {exc.strerror or exc}"]) from exc
        except yaml.YAMLError as exc:
            raise ConfigError([f"{origin}: not valid YAML: {exc}"]) from exc
    base = path.parent if path else None
    try:
        model = parse_config(data, origin)
    except ConfigError as exc:
        # Report the rule files' problems too, so that one run lists every error.
        sources = data.get("rules") if isinstance(data, dict) else None
        if isinstance(sources, list) and all(isinstance(x, str) for x in sources):
            try:
                load_rule_set(sources, base_dir=base)
            except ConfigError as rule_exc:
                raise ConfigError(exc.messages + rule_exc.messages) from exc
        raise
    found = load_rule_set(model.rules, base_dir=base)
    known = {rule_id for rule_id, _ in found.all_ids}
    unknown = [r for r in model.disable if r not in known]
    if unknown:
        raise ConfigError(
            [f"{origin}: disable: unknown rule id {r!r} (not in any rule source)" for r in unknown]
        )
    off = set(model.disable)
    return Config(
        model=model,
        rules=tuple(r for r in found.events if r.id not in off),
        path=path,
        metric_rules=tuple(r for r in found.metrics if r.id not in off),
    )
