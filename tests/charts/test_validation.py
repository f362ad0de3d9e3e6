"""The validator the render tests rely on (tests/charts/validation.py): a CRD's OpenAPI schema turned
into JSON Schema is as strict as the API server's field validation.
"""

from __future__ import annotations

import copy

from tests.charts.validation import crd_to_json_schema


def test_crd_conversion_is_strict_about_unknown_fields():
    schema = crd_to_json_schema({
        "type": "object",
        "properties": {
            "port": {"x-kubernetes-int-or-string": True, "anyOf": [{"type": "integer"}, {"type": "string"}]},
            "free": {"type": "object", "x-kubernetes-preserve-unknown-fields": True, "properties": {"a": {"type": "string"}}},
            "maybe": {"type": "string", "nullable": True},
        },
    })
    import jsonschema

    validator = jsonschema.Draft7Validator(copy.deepcopy(schema))
    assert validator.is_valid({"port": 8080, "free": {"b": 1}, "maybe": None})
    assert validator.is_valid({"port": "http"})
    assert not validator.is_valid({"prot": 8080})
