"""What every rule has, whatever its dialect: id, title, severity, documentation."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

RULE_ID = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")
SeverityName = Literal["info", "low", "medium", "high", "critical"]


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class RuleHeaderModel(StrictModel):
    id: str
    title: str = Field(min_length=1, max_length=200)
    severity: SeverityName
    description: str = ""
    runbook: str | None = None
    tags: list[str] = Field(default_factory=list)
    metadata: dict[str, str] = Field(default_factory=dict)

    @field_validator("id")
    @classmethod
    def _kebab(cls, v: str) -> str:
        if not RULE_ID.match(v) or len(v) > 64:
            raise ValueError(f'invalid rule id "{v}" (kebab-case: lowercase words and digits)')
        return v

    @field_validator("runbook")
    @classmethod
    def _url(cls, v: str | None) -> str | None:
        if v is not None and not re.match(r"^https?://\S+$", v):
            raise ValueError(f'runbook must be an http(s) URL, got "{v[:60]}"')
        return v
