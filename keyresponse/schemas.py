"""The published JSON Schemas of the incident record and its investigation (`docs/schemas/`).

    python -m keyresponse.schemas docs/schemas     # write them again after changing a model

`tests/keyresponse/test_model.py` fails when the published files differ from the models.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

from pydantic import JsonValue

from keyresponse.incident import Incident
from keyresponse.model import InvestigationRecord


def schemas() -> dict[str, dict[str, JsonValue]]:
    """The published JSON Schemas, by file name."""
    incident = Incident.model_json_schema()
    incident["properties"]["investigation"] = {  # validated against the record (Incident's validator)
        "$ref": "investigation.schema.json", "description": "The investigation (keyresponse.model.InvestigationRecord)."}
    return {"investigation.schema.json": InvestigationRecord.model_json_schema(), "incident.schema.json": incident}


def write_schemas(folder: Path) -> list[Path]:
    folder.mkdir(parents=True, exist_ok=True)
    written = []
    for name, schema in schemas().items():
        path = folder / name
        path.write_text(json.dumps(schema, indent=2, sort_keys=True) + "\n", encoding="utf-8")
        written.append(path)
    return written


if __name__ == "__main__":
    for path in write_schemas(Path(sys.argv[1] if len(sys.argv) > 1 else "docs/schemas")):
        print(path)
