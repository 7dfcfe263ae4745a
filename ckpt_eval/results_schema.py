"""The JSON Schema of consolidated_results.json, and the check every written file passes.

The file is a contract (users' scripts and dashboards read it): consolidate validates what it
is about to write, so a change that drops or retypes a key fails the run that makes it, and
the tests, instead of a reader months later.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

import jsonschema
import yaml

SCHEMA_PATH = Path(__file__).resolve().parent / "schemas" / "results.schema.yaml"


@cache
def results_schema() -> dict[str, Any]:
    with open(SCHEMA_PATH, encoding="utf-8") as handle:
        return yaml.safe_load(handle)


def validate_results(result: dict[str, Any]) -> None:
    """Raise jsonschema.ValidationError naming the first key that breaks the contract."""
    jsonschema.Draft7Validator(results_schema()).validate(result)
