"""JSON Schemas of the config files, generated from the models, so editors check YAML as people type.

Regenerate after changing a model:  python -m borderx.config.schema config/schema
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from borderx.config.models import Agency, Agreement, Dataset, Settings

MODELS = {"agency": Agency, "agreement": Agreement, "dataset": Dataset, "settings": Settings}


def schemas() -> dict[str, dict]:
    out = {}
    for name, model in MODELS.items():
        schema = model.model_json_schema()
        schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
        schema["$id"] = f"https://borderx.example/schema/{name}.schema.json"
        out[f"{name}.schema.json"] = schema
    return out


def render(schema: dict) -> str:
    return json.dumps(schema, indent=2, sort_keys=True) + "\n"


def write_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = folder / name
        path.write_text(render(schema), encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "config/schema")):
        print(path)
