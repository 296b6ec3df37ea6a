"""JSON Schemas of the config file and of rule files, from the pydantic models that validate
them, for editors (YAML language servers) and CI linters. ``config/*.schema.json`` are these,
written by ``python -m veilleur.schemas config/``; a test keeps them current.

A schema checks the shape; only ``veilleur check`` checks everything (patterns compile, ids
are unique, rules named in ``disable`` exist)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from pydantic import TypeAdapter

from veilleur.config import ConfigModel
from veilleur.rules.loader import RuleModel
from veilleur.rules.metric_spec import MetricRuleModel

BASE = "https://github.com/veilleur/veilleur/schemas"


def config_schema() -> dict[str, Any]:
    schema = ConfigModel.model_json_schema()
    schema.update({"$id": f"{BASE}/veilleur.schema.json", "title": "veilleur configuration"})
    return schema


def rules_schema() -> dict[str, Any]:
    listing = TypeAdapter(list[RuleModel | MetricRuleModel]).json_schema()
    defs = listing.pop("$defs")
    return {
        "$id": f"{BASE}/rules.schema.json",
        "title": "veilleur rule file",
        "description": "Rules (event rules with match or filter_pattern, metric rules with "
        "metric), as a list or under a `rules:` key.",
        "$defs": defs,
        "anyOf": [
            listing,
            {
                "type": "object",
                "properties": {"rules": listing},
                "required": ["rules"],
                "additionalProperties": False,
            },
        ],
    }


SCHEMAS = {"veilleur.schema.json": config_schema, "rules.schema.json": rules_schema}


def render(schema: dict[str, Any]) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def main(argv: list[str]) -> int:
    folder = Path(argv[0] if argv else "config")
    for name, build in SCHEMAS.items():
        (folder / name).write_text(render(build()), "utf-8")
        print(f"wrote {folder / name}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
