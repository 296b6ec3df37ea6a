"""Local stand-ins for AWS APIs that moto lacks: the CloudTrail ``LookupEvents`` emulator."""

from veilleur.emulator.cloudtrail import (
    DEFAULT_ACCOUNT,
    DEFAULT_REGION,
    LOOKUP_EVENTS,
    CloudTrailEmulator,
    EmulatorConfig,
)
from veilleur.emulator.cloudtrail_control import (
    DelayModel,
    EmulatorStats,
    Fault,
    FaultKind,
    Outcome,
    RateLimit,
    RateLimitMode,
    ScopeStats,
)
from veilleur.emulator.cloudtrail_events import AddResult, EventSpec, Resource, Scope

__all__ = [
    "DEFAULT_ACCOUNT",
    "DEFAULT_REGION",
    "LOOKUP_EVENTS",
    "AddResult",
    "CloudTrailEmulator",
    "DelayModel",
    "EmulatorConfig",
    "EmulatorStats",
    "EventSpec",
    "Fault",
    "FaultKind",
    "Outcome",
    "RateLimit",
    "RateLimitMode",
    "Resource",
    "Scope",
    "ScopeStats",
]
