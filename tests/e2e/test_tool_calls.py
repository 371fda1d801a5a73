"""Tool calling through the official openai client on the default model (no chat template of its
own: the ChatML fallback and the generic JSON format): required and named calls, whole and
streamed, arguments that validate against each tool's schema, streamed deltas that put together
give the whole message, a full round trip, and the 400s of bad tool requests. With a Hermes-format
template (--chat-template), tool_choice auto is a lazy grammar: calls the model starts follow the
schema."""
import json

import jsonschema
import openai
import pytest

from test_server import MODEL_ID, Server, client, error_of, server  # noqa: F401 (fixtures)

WEATHER = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Current weather of a city",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "maxLength": 30},
                "unit": {"enum": ["celsius", "fahrenheit"]},
            },
            "required": ["city"],
        },
    },
}
TIME = {
    "type": "function",
    "function": {
        "name": "get_time",
        "description": "Current time in a time zone",
        "parameters": {
            "type": "object",
            "properties": {"zone": {"type": "string", "enum": ["UTC", "CET", "PST"]},
                           "seconds": {"type": "boolean"}},
            "required": ["zone"],
        },
    },
}
TOOLS = [WEATHER, TIME]
SCHEMAS = {t["function"]["name"]: t["function"]["parameters"] for t in TOOLS}
ASK = [{"role": "user", "content": "What is the weather in Paris right now?"}]


def check_calls(calls, names=None):
    assert calls, "no tool calls"
    for c in calls:
        assert c.type == "function"
        assert c.id.startswith("call_") and len(c.id) > 10
        assert c.function.name in SCHEMAS
        if names is not None:
            assert c.function.name in names
        args = json.loads(c.function.arguments)
        jsonschema.validate(args, SCHEMAS[c.function.name])


def assemble(chunks):
    """The message a client builds from a stream: content and calls by index."""
    content, calls, finish = "", {}, None
    for ch in chunks:
        if not ch.choices:
            continue
        c = ch.choices[0]
        d = c.delta
        content += d.content or ""
        for t in d.tool_calls or []:
            entry = calls.setdefault(t.index, {"id": None, "name": "", "arguments": ""})
            if t.id:
                assert entry["id"] is None, "a call's id is sent once"
                entry["id"] = t.id
                entry["name"] = t.function.name
            assert t.function.arguments is not None
            entry["arguments"] += t.function.arguments
        finish = c.finish_reason or finish
    return content, [calls[i] for i in sorted(calls)], finish


@pytest.mark.parametrize("parallel", [False, True])
def test_required(client, parallel):
    r = client.chat.completions.create(model=MODEL_ID, messages=ASK, tools=TOOLS, tool_choice="required",
                                       parallel_tool_calls=parallel, max_tokens=200, temperature=0)
    c = r.choices[0]
    calls = c.message.tool_calls
    if c.finish_reason == "length":
        # Cut off by max_tokens (the small model may call again and again): the last call may be
        # incomplete, as OpenAI's API returns it too; every call before it completed.
        assert parallel and calls
        assert calls[-1].function.name in SCHEMAS
        calls = calls[:-1]
    check_calls(calls)
    if not parallel:
        assert len(c.message.tool_calls) == 1
        assert c.finish_reason == "tool_calls"
        assert c.message.content is None
    else:
        assert c.finish_reason in ("tool_calls", "length")


def test_named_function(client):
    r = client.chat.completions.create(
        model=MODEL_ID, messages=[{"role": "user", "content": "What time is it in Berlin?"}], tools=TOOLS,
        tool_choice={"type": "function", "function": {"name": "get_time"}}, max_tokens=200, temperature=0)
    c = r.choices[0]
    assert c.finish_reason == "tool_calls"
    assert len(c.message.tool_calls) == 1
    check_calls(c.message.tool_calls, names={"get_time"})


@pytest.mark.parametrize("choice", ["required", {"type": "function", "function": {"name": "get_weather"}}])
def test_streamed_equals_whole(client, choice):
    kw = dict(model=MODEL_ID, messages=ASK, tools=TOOLS, tool_choice=choice, parallel_tool_calls=False,
              max_tokens=200, temperature=0)
    whole = client.chat.completions.create(**kw).choices[0]
    chunks = list(client.chat.completions.create(stream=True, **kw))
    content, calls, finish = assemble(chunks)
    assert finish == whole.finish_reason == "tool_calls"
    assert (content or None) == whole.message.content
    assert [(c["name"], c["arguments"]) for c in calls] == \
        [(t.function.name, t.function.arguments) for t in whole.message.tool_calls]
    assert all(c["id"].startswith("call_") for c in calls)
    # The arguments arrive in pieces, never as raw markup in content.
    pieces = sum(len(ch.choices[0].delta.tool_calls or []) for ch in chunks if ch.choices)
    assert pieces > 2
    assert content == ""


def test_auto_is_a_call_or_an_answer(client):
    for messages in (ASK, [{"role": "user", "content": "Say hello."}]):
        for stream in (False, True):
            kw = dict(model=MODEL_ID, messages=messages, tools=TOOLS, tool_choice="auto", parallel_tool_calls=False,
                      max_tokens=120, temperature=0)
            if stream:
                content, calls, finish = assemble(client.chat.completions.create(stream=True, **kw))
            else:
                c = client.chat.completions.create(**kw).choices[0]
                content, finish = c.message.content, c.finish_reason
                calls = [{"name": t.function.name, "arguments": t.function.arguments}
                         for t in c.message.tool_calls or []]
            assert "{" not in (content or "")[:1], content  # never the raw JSON wrapper
            if calls:
                assert finish == "tool_calls"
                for t in calls:
                    jsonschema.validate(json.loads(t["arguments"]), SCHEMAS[t["name"]])
            else:
                assert finish in ("stop", "length") and content


def test_none_gives_text(client):
    r = client.chat.completions.create(model=MODEL_ID, messages=ASK, tools=TOOLS, tool_choice="none",
                                       max_tokens=20, temperature=0)
    c = r.choices[0]
    assert not c.message.tool_calls and c.finish_reason in ("stop", "length")


def test_round_trip(client):
    first = client.chat.completions.create(model=MODEL_ID, messages=ASK, tools=TOOLS, tool_choice="required",
                                           parallel_tool_calls=False, max_tokens=200, temperature=0)
    msg = first.choices[0].message
    check_calls(msg.tool_calls)
    call = msg.tool_calls[0]
    history = ASK + [
        {"role": "assistant", "content": None,
         "tool_calls": [{"id": call.id, "type": "function",
                         "function": {"name": call.function.name, "arguments": call.function.arguments}}]},
        {"role": "tool", "tool_call_id": call.id, "content": json.dumps({"temperature": 18, "sky": "clear"})},
    ]
    final = client.chat.completions.create(model=MODEL_ID, messages=history, tools=TOOLS, max_tokens=60,
                                           temperature=0)
    c = final.choices[0]
    assert c.finish_reason in ("stop", "length", "tool_calls")
    assert c.message.content or c.message.tool_calls
    # Without tools, the same history is still a valid conversation.
    plain = client.chat.completions.create(model=MODEL_ID, messages=history, max_tokens=30, temperature=0)
    assert plain.choices[0].message.content is not None


def test_n_and_sampling(client):
    r = client.chat.completions.create(model=MODEL_ID, messages=ASK, tools=TOOLS, tool_choice="required",
                                       parallel_tool_calls=False, n=3, temperature=1.0, seed=7, max_tokens=200)
    assert len(r.choices) == 3
    for c in r.choices:
        assert c.finish_reason == "tool_calls"
        check_calls(c.message.tool_calls)


def bad(client, **kw):
    kw.setdefault("messages", ASK)
    with pytest.raises(openai.BadRequestError) as e:
        client.chat.completions.create(model=MODEL_ID, max_tokens=5, **kw)
    return error_of(e)


def test_bad_tool_requests_are_400(client):
    err = bad(client, tools=TOOLS, tool_choice={"type": "function", "function": {"name": "nope"}})
    assert err["param"] == "tool_choice" and "nope" in err["message"]
    err = bad(client, tools=TOOLS, tool_choice="sometimes")
    assert err["param"] == "tool_choice"
    err = bad(client, tool_choice="required")
    assert err["param"] == "tool_choice"
    err = bad(client, tools=[{"type": "function", "function": {"description": "no name"}}])
    assert err["param"] == "tools[0].function.name"
    err = bad(client, tools=[{"type": "retrieval"}])
    assert err["param"] == "tools[0].type"
    err = bad(client, tools=[{"type": "function", "function": {"name": "bad name!"}}])
    assert err["param"] == "tools[0].function.name"
    err = bad(client, tools=[WEATHER, WEATHER])
    assert err["param"] == "tools[1].function.name"
    err = bad(client, tools=[{"type": "function", "function": {
        "name": "f", "parameters": {"type": "object", "properties": {"n": {"type": "number", "multipleOf": 3}}}}}])
    assert err["param"] == "tools[0].function.parameters" and "multipleOf" in err["message"]
    err = bad(client, tools=TOOLS, parallel_tool_calls="yes")
    assert err["param"] == "parallel_tool_calls"
    err = bad(client, tools=TOOLS, logprobs=True)
    assert err["param"] == "logprobs"
    err = bad(client, tools=TOOLS, response_format={"type": "json_object"})
    assert err["param"] == "response_format"
    err = bad(client, functions=[{"name": "f", "parameters": {}}])
    assert err["param"] == "functions"
    err = bad(client, messages=[{"role": "assistant", "content": None, "tool_calls": [{"id": "x", "type": "function",
                                                                                      "function": {"arguments": "{}"}}]}])
    assert err["param"] == "messages[0].tool_calls[0].function.name"


# A Hermes-format template (it writes <tool_call>) for the default model: tool_choice auto is then
# a lazy grammar, free text until the model writes <tool_call>, the calls' grammar after it.
HERMES_TEMPLATE = """{{ bos_token }}{%- for m in messages %}<start_of_turn>{{ 'model' if m.role == 'assistant' else 'user' }}
{% if loop.first and tools %}You can call these tools: {{ tools | tojson }}
To call one, write <tool_call>
{"name": "...", "arguments": {...}}
</tool_call>
{% endif %}{{ m.content }}<end_of_turn>
{% endfor %}{%- if add_generation_prompt %}<start_of_turn>model
{% endif %}"""
# The model is asked to copy a call whose arguments break the schema ("town" for "city").
COPY_A_CALL = [{"role": "user", "content": 'Copy this text exactly: <tool_call>\n{"name": "get_weather", '
                                           '"arguments": {"town": "Paris"}}\n</tool_call>'}]


@pytest.fixture(scope="module")
def hermes_client(gannet_bin, tmp_path_factory):
    path = tmp_path_factory.mktemp("hermes") / "hermes.jinja"
    path.write_text(HERMES_TEMPLATE)
    s = Server(gannet_bin, "--chat-template", path)
    yield s.client()
    s.stop()
    assert s.proc.returncode == 0, s.stderr_lines[-20:]


@pytest.mark.parametrize("stream", [False, True])
def test_auto_native_format_calls_follow_the_schema(hermes_client, stream):
    """Whatever the model writes after <tool_call> is a call whose arguments validate: no
    malformed call comes back as content (unless max_tokens cut it)."""
    called = 0
    for seed in range(1, 5):
        kw = dict(model=MODEL_ID, messages=COPY_A_CALL, tools=TOOLS, tool_choice="auto", parallel_tool_calls=False,
                  max_tokens=120, temperature=0.8, n=3, seed=seed)
        if stream:
            chunks = list(hermes_client.chat.completions.create(stream=True, **kw))
            outcomes = []
            for i in range(3):
                content, calls, finish = assemble([c for c in chunks if c.choices and c.choices[0].index == i])
                outcomes.append((content, [(c["name"], c["arguments"]) for c in calls], finish))
        else:
            r = hermes_client.chat.completions.create(**kw)
            outcomes = [(ch.message.content or "", [(t.function.name, t.function.arguments)
                                                    for t in ch.message.tool_calls or []], ch.finish_reason)
                        for ch in r.choices]
        for content, calls, finish in outcomes:
            for name, arguments in calls:
                jsonschema.validate(json.loads(arguments), SCHEMAS[name])
            if finish != "length":
                assert "<tool_call>" not in content, content
            if calls:
                called += 1
                assert finish == "tool_calls"
                assert len(calls) == 1
        if called >= 2:
            break
    assert called >= 2, "the lazy grammar never took a call"
