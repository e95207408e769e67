"""The JSON Schemas shipped for editors are exactly what the models generate, and they accept the project's config."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from borderx.config.schema import render, schemas

REPO = Path(__file__).resolve().parents[2]
SHIPPED = REPO / "config" / "schema"


@pytest.mark.parametrize("name", sorted(schemas()))
def test_shipped_schema_is_current(name):
    assert (SHIPPED / name).read_text() == render(schemas()[name]), "run: python -m borderx.config.schema config/schema"


@pytest.mark.parametrize("kind,folder", [("agency", "agencies"), ("agreement", "agreements"), ("dataset", "datasets")])
def test_project_config_validates_against_the_schema(kind, folder):
    schema = json.loads((SHIPPED / f"{kind}.schema.json").read_text())
    files = sorted((REPO / "config" / folder).glob("*.yaml"))
    assert files
    for path in files:
        # JSON Schema sees what an editor sees: dates as the strings YAML writes them as.
        data = json.loads(json.dumps(yaml.safe_load(path.read_text()), default=str))
        jsonschema.validate(data, schema)


def test_schema_catches_a_typo_as_people_type():
    schema = json.loads((SHIPPED / "agreement.schema.json").read_text())
    data = json.loads(json.dumps(yaml.safe_load((REPO / "config/agreements/DSA-2026-001.yaml").read_text()), default=str))
    data["statuss"] = "active"
    with pytest.raises(jsonschema.ValidationError, match="statuss"):
        jsonschema.validate(data, schema)
