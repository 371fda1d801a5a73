"""JSON Schema to grammar, differentially against Python's `jsonschema`: random texts of every
fixture schema's grammar (tests/fixtures/json_schema/, written by the json_schema_test binary's
sampler, JsonSchemaSamples.Write) must parse with json.loads and validate, formats included; and
each fixture's own valid/invalid instances must be what jsonschema says they are.
"""
import json
import os
import subprocess
from pathlib import Path

import jsonschema
import pytest

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "json_schema"
TEST_BIN = Path(os.environ.get("GANNET_JSON_SCHEMA_TEST", ROOT / "build" / "tests" / "json_schema_test"))
SAMPLES_PER_SCHEMA = 80


def fixtures():
    return {p.stem: json.loads(p.read_text()) for p in sorted(FIXTURES.glob("*.json"))}


def validator(schema):
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    cls.check_schema(schema)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def test_formats_are_checked():
    # date-time and time are checked only with rfc3339-validator installed; without it the
    # differential test would pass vacuously on them.
    v = validator({"type": "string", "format": "date-time"})
    assert not v.is_valid("2024-01-01 12:00:00")
    assert not validator({"type": "string", "format": "date"}).is_valid("2024-02-30")


@pytest.mark.parametrize("name", sorted(fixtures()))
def test_fixture_instances_agree_with_jsonschema(name):
    f = fixtures()[name]
    v = validator(f["schema"])
    for text in f["valid"]:
        errors = list(v.iter_errors(json.loads(text)))
        assert not errors, (text, errors[0].message)
    for text in f["invalid"]:
        try:
            instance = json.loads(text)
        except json.JSONDecodeError:
            continue
        assert not v.is_valid(instance), text


@pytest.fixture(scope="module")
def samples(tmp_path_factory):
    if not TEST_BIN.is_file():
        pytest.fail(f"{TEST_BIN} not found; build the json_schema_test target")
    out = tmp_path_factory.mktemp("samples") / "samples.jsonl"
    env = dict(os.environ, GANNET_JSON_SCHEMA_SAMPLES=str(out),
               GANNET_JSON_SCHEMA_SAMPLES_PER_SCHEMA=str(SAMPLES_PER_SCHEMA))
    subprocess.run([str(TEST_BIN), "--gtest_filter=JsonSchemaSamples.Write"], env=env, check=True,
                   capture_output=True, timeout=600)
    return {d["name"]: d for d in map(json.loads, out.read_text().splitlines())}


def test_every_generated_text_validates(samples):
    schemas = {name: f["schema"] for name, f in fixtures().items()}
    schemas["json_object"] = {"type": "object"}
    assert set(samples) == set(schemas)
    failures, total = [], 0
    for name, d in samples.items():
        v = validator(schemas[name])
        # The sampler gets stuck only where it finds no way to end; it must not, here.
        assert d["stuck"] == 0 and len(d["samples"]) == SAMPLES_PER_SCHEMA, name
        for text in d["samples"]:
            total += 1
            try:
                instance = json.loads(text)
            except json.JSONDecodeError as e:
                failures.append((name, text, str(e)))
                continue
            errors = list(v.iter_errors(instance))
            if errors:
                failures.append((name, text, errors[0].message))
    assert total >= 25 * SAMPLES_PER_SCHEMA
    assert not failures, failures[:5]
    print(f"{total} generated texts of {len(samples)} grammars: all valid")
