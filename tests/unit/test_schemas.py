"""The JSON Schemas shipped in config/ are current and accept what veilleur accepts."""

from __future__ import annotations

import json
from importlib import resources
from pathlib import Path

import jsonschema
import pytest
import yaml

from veilleur.schemas import SCHEMAS, render

CONFIG = Path(__file__).resolve().parents[2] / "config"


@pytest.mark.parametrize("name", sorted(SCHEMAS))
def test_the_shipped_schema_is_the_generated_one(name: str) -> None:
    shipped = (CONFIG / name).read_text("utf-8")
    assert shipped == render(SCHEMAS[name]()), (
        f"config/{name} is stale: run `python -m veilleur.schemas config/`"
    )


def validator(name: str) -> jsonschema.Draft202012Validator:
    schema = json.loads((CONFIG / name).read_text("utf-8"))
    jsonschema.Draft202012Validator.check_schema(schema)
    return jsonschema.Draft202012Validator(schema)


def test_the_example_config_and_the_deploy_configs_conform() -> None:
    v = validator("veilleur.schema.json")
    root = CONFIG.parent
    for path in (CONFIG / "veilleur.example.yaml", root / "deploy" / "docker" / "veilleur.yaml"):
        v.validate(yaml.safe_load(path.read_text("utf-8")))


def test_every_shipped_rule_file_conforms() -> None:
    v = validator("rules.schema.json")
    v.validate(yaml.safe_load((CONFIG / "rules.example.yaml").read_text("utf-8")))
    for pack in ("cis", "essentials"):
        text = resources.files("veilleur.packs").joinpath(f"{pack}.yaml").read_text("utf-8")
        v.validate(yaml.safe_load(text))


def test_the_schemas_catch_what_an_editor_should_flag() -> None:
    config = validator("veilleur.schema.json")
    assert list(config.iter_errors({"cloudtrail": {"lateness": "15 minutes"}}))
    assert list(config.iter_errors({"bogus": 1}))
    assert not list(config.iter_errors({"cloudtrail": {"lateness": "15m", "poll_interval": 30}}))
    rules = validator("rules.schema.json")
    assert list(rules.iter_errors([{"id": "x", "title": "t", "severity": "urgent"}]))
