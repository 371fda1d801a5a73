"""POST /tokenize, POST /detokenize and GET /props (llama-server's utility endpoints) on the default
model: ids agree with `gannet tokenize`, round trips restore the text, bad bodies are 400s in
OpenAI's error shape, and the API key covers them."""
import httpx
import pytest

from test_server import MODEL, MODEL_ID, Server, tokenize

TEXT = "Hello, world! Grüße 👋 <start_of_turn>user\nline two\n"


@pytest.fixture(scope="module")
def server(gannet_bin):
    if not MODEL.is_file():
        pytest.fail(f"default model missing: {MODEL}")
    s = Server(gannet_bin, "--api-key", "k3y", "--parallel", "4")
    yield s
    s.stop()
    assert s.proc.returncode == 0, s.stderr_lines[-20:]


def post(server, path, body, key="k3y"):
    headers = {"Authorization": f"Bearer {key}"} if key else {}
    return httpx.post(server.url + path, json=body, headers=headers, timeout=60)


def test_tokenize_matches_the_cli_and_round_trips(server, gannet_bin):
    r = post(server, "/tokenize", {"content": TEXT, "add_special": True})
    assert r.status_code == 200, r.text
    ids = r.json()["tokens"]
    assert ids == tokenize(gannet_bin, TEXT, "--special")
    spelled = post(server, "/tokenize", {"content": TEXT, "add_special": True, "parse_special": False})
    assert spelled.json()["tokens"] == tokenize(gannet_bin, TEXT)
    plain = post(server, "/tokenize", {"content": TEXT}).json()["tokens"]
    assert plain == ids[1:]  # add_special defaults to false: no BOS
    no_special = post(server, "/tokenize", {"content": TEXT, "parse_special": False}).json()["tokens"]
    assert len(no_special) > len(plain)  # <start_of_turn> spelled out as text
    back = post(server, "/detokenize", {"tokens": plain})
    assert back.status_code == 200
    assert back.json()["content"] == TEXT
    pieces = post(server, "/tokenize", {"content": TEXT, "with_pieces": True}).json()["tokens"]
    assert [p["id"] for p in pieces] == plain
    text = b""
    for p in pieces:
        text += p["piece"].encode() if isinstance(p["piece"], str) else bytes(p["piece"])
    assert text.decode() == TEXT


def test_props(server):
    r = httpx.get(server.url + "/props", headers={"Authorization": "Bearer k3y"}, timeout=30)
    assert r.status_code == 200
    p = r.json()
    assert p["model"] == MODEL_ID
    assert p["n_ctx"] == 1024
    assert p["n_vocab"] == 262144
    assert p["total_slots"] == 4
    assert "messages" in p["chat_template"]
    assert p["bos_token"] == "<bos>"
    assert p["speculative"] == "ngram"  # the default: n-gram drafts where they pay
    assert p["build_info"]


def test_bad_requests(server):
    for path, body, param in (("/tokenize", {}, "content"),
                              ("/tokenize", {"content": 5}, "content"),
                              ("/tokenize", {"content": "a", "add_special": "yes"}, "add_special"),
                              ("/detokenize", {"tokens": "1 2"}, "tokens"),
                              ("/detokenize", {"tokens": [1, -1]}, "tokens[1]"),
                              ("/detokenize", {"tokens": [1, 262144]}, "tokens[1]"),
                              ("/detokenize", {"tokens": [1, 2.5]}, "tokens[1]")):
        r = post(server, path, body)
        assert r.status_code == 400, (path, body, r.text)
        assert r.json()["error"]["param"] == param
    r = httpx.post(server.url + "/tokenize", content=b"[" * 100000, timeout=30,
                   headers={"Authorization": "Bearer k3y", "Content-Type": "application/json"})
    assert r.status_code == 400
    assert httpx.get(server.url + "/tokenize", headers={"Authorization": "Bearer k3y"}).status_code == 405
    assert post(server, "/props", {}).status_code == 405
    for path in ("/tokenize", "/detokenize"):
        assert post(server, path, {"content": "a", "tokens": [1]}, key=None).status_code == 401
    assert httpx.get(server.url + "/props").status_code == 401
    assert httpx.get(server.url + "/health").status_code == 200
