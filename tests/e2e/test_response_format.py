"""`response_format` (json_object, json_schema) through the official openai client on the default
model: outputs parse and validate against their schemas; unsupported schemas are 400s."""
import json

import openai
import pytest

from test_server import MODEL_ID, ROOT, client, error_of, server  # noqa: F401 (fixtures)


# --- response_format (structured outputs) -----------------------------------------------------

JSON_SCHEMA_FIXTURES = ROOT / "tests" / "fixtures" / "json_schema"


def schema_validator(schema):
    import jsonschema
    cls = jsonschema.validators.validator_for(schema, default=jsonschema.Draft202012Validator)
    return cls(schema, format_checker=cls.FORMAT_CHECKER)


def test_response_format_json_schema(client):
    # Every fixture schema made for the model (bounded strings, arrays and numbers): the output
    # parses and validates (formats included), and ends by itself ("stop").
    fixtures = {p.stem: json.loads(p.read_text()) for p in sorted(JSON_SCHEMA_FIXTURES.glob("*.json"))}
    chosen = {name: f for name, f in fixtures.items() if f["e2e"]}
    assert len(chosen) >= 20
    failures = []
    for name, f in chosen.items():
        prompt = f.get("prompt", "Answer in JSON.")
        r = client.chat.completions.create(
            model=MODEL_ID, messages=[{"role": "user", "content": prompt}], max_tokens=320, temperature=0,
            response_format={"type": "json_schema",
                             "json_schema": {"name": name, "strict": True, "schema": f["schema"]}})
        c = r.choices[0]
        if c.finish_reason != "stop":
            failures.append((name, c.finish_reason, c.message.content))
            continue
        errors = list(schema_validator(f["schema"]).iter_errors(json.loads(c.message.content)))
        if errors:
            failures.append((name, c.message.content, errors[0].message))
    assert not failures, failures


def test_response_format_json_schema_sampled_and_streamed(client):
    # Every value is bounded (a 5-character string at most), so 200 tokens always suffice.
    schema = json.loads((JSON_SCHEMA_FIXTURES / "optional_fields.json").read_text())["schema"]
    rf = {"type": "json_schema", "json_schema": {"name": "fields", "schema": schema}}
    msgs = [{"role": "user", "content": "Return a small JSON object."}]
    r = client.chat.completions.create(model=MODEL_ID, messages=msgs, max_tokens=200, temperature=1.0, seed=5,
                                       n=3, response_format=rf)
    for c in r.choices:
        assert c.finish_reason == "stop", c.message.content
        assert schema_validator(schema).is_valid(json.loads(c.message.content)), c.message.content
    chunks = list(client.chat.completions.create(model=MODEL_ID, messages=msgs, max_tokens=200, temperature=0,
                                                 stream=True, response_format=rf))
    streamed = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert schema_validator(schema).is_valid(json.loads(streamed)), streamed


def test_response_format_json_object(client):
    r = client.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": "Give a JSON object with a name."}],
        max_tokens=200, temperature=0, response_format={"type": "json_object"})
    c = r.choices[0]
    if c.finish_reason == "stop":
        assert isinstance(json.loads(c.message.content), dict), c.message.content
    else:  # an unbounded object may run out of tokens; what came is still an object's start
        assert c.message.content.startswith("{"), c.message.content


def test_response_format_errors(client):
    msgs = [{"role": "user", "content": "x"}]
    cases = [
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {
            "type": "object", "properties": {"n": {"type": "number", "multipleOf": 3}}}}},
         ["'multipleOf'", "#/properties/n"]),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {
            "type": "string", "pattern": "(?<=a)b"}}}, ["'pattern'"]),
        ({"type": "json_schema", "json_schema": {"name": "x", "schema": {"$ref": "#/$defs/none"}}}, ["'$ref'"]),
        ({"type": "json_schema", "json_schema": {"name": "x"}}, ["schema"]),
        ({"type": "xml"}, ["response_format.type"]),
    ]
    for rf, needles in cases:
        with pytest.raises(openai.BadRequestError) as e:
            client.chat.completions.create(model=MODEL_ID, messages=msgs, max_tokens=4, response_format=rf)
        err = error_of(e)
        assert err["param"] == "response_format", err
        for n in needles:
            assert n in err["message"], (n, err)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL_ID, messages=msgs, max_tokens=4,
                                       response_format={"type": "json_object"},
                                       extra_body={"grammar": 'root ::= "a"'})
    assert error_of(e)["param"] == "response_format"
