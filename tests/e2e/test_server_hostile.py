"""`gannet serve` against hostile clients and browsers: slow and malformed HTTP, connection limits,
Host/Origin guards and CORS, a closed log pipe, bad limit flags, and the worst JSON bodies; the
server answers each precisely and keeps serving."""
import json
import re
import select
import signal
import socket
import subprocess
import threading
import time

import httpx
import pytest

from test_server import MODEL, MODEL_ID, Server


# --- hostile clients and browsers --------------------------------------------------------------

def read_raw_response(sock, timeout=10):
    """Reads one response off a raw socket: (status, lower-cased headers, body). Reads until the
    Content-Length is in, or the server closes."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ")[1]) if lines[0].startswith("HTTP/") else 0
    headers = {k.strip().lower(): v.strip() for k, _, v in (l.partition(":") for l in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        chunk = sock.recv(65536)
        if not chunk:
            break
        body += chunk
    return status, headers, body


def drip(port, head, body_bytes=b"", gap=0.1, limit=30.0):
    """Sends `head` at once, then `body_bytes` one byte every `gap` seconds until the server
    answers; returns (status, seconds from the first dripped byte, body)."""
    sock = socket.create_connection(("127.0.0.1", port), timeout=limit)
    sock.sendall(head)
    t0 = time.monotonic()
    for i in range(len(body_bytes)):
        r, _, _ = select.select([sock], [], [], gap)
        if r:
            break
        try:
            sock.sendall(body_bytes[i:i + 1])
        except OSError:
            break
    status, _, body = read_raw_response(sock, timeout=limit)
    elapsed = time.monotonic() - t0
    sock.close()
    return status, elapsed, body


def test_slow_clients_get_408_while_health_answers(gannet_bin):
    s = Server(gannet_bin, "--header-timeout", "1", "--min-body-rate", "1000", "--body-rate-grace", "0.5")
    try:
        results = {}

        def slow_headers():
            head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            results["headers"] = drip(s.port, head, b"X-Pad: " + b"p" * 200 + b"\r\n")

        def slow_body():
            head = (b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                    b"Content-Length: 2000\r\n\r\n")
            results["body"] = drip(s.port, head, b'{"prompt": "' + b"x" * 1980 + b'"}')

        threads = [threading.Thread(target=slow_headers), threading.Thread(target=slow_body)]
        for t in threads:
            t.start()
        time.sleep(0.3)
        # While both drip, /health and /metrics answer at once.
        for path in ("/health", "/metrics"):
            t0 = time.monotonic()
            assert httpx.get(s.url + path, timeout=5).status_code == 200
            assert time.monotonic() - t0 < 0.5
        for t in threads:
            t.join(30)
        status, elapsed, body = results["headers"]
        assert status == 408 and elapsed < 3, (status, elapsed, body)
        assert b"header timeout" in body
        status, elapsed, body = results["body"]
        assert status == 408 and elapsed < 3, (status, elapsed, body)
        assert json.loads(body)["error"]["code"] == 408
        assert httpx.get(s.url + "/health").status_code == 200
    finally:
        s.stop()
    assert s.proc.returncode == 0, s.stderr_lines[-20:]


def test_strict_framing_and_connection_limits(gannet_bin):
    s = Server(gannet_bin, "--max-requests-per-conn", "2", "--http-memory", "64K", "--max-body", "1048576")

    def ask(raw):
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
            sock.sendall(raw)
            return read_raw_response(sock)

    try:
        post = b"POST /v1/completions HTTP/1.1\r\nHost: 127.0.0.1\r\n"
        for raw in (post + b"Content-Length: 5,\r\n\r\nhello",
                    b"POST /v1/completions HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
                    post + b"Transfer-Encoding: chunked\r\n\r\n5;a\rb\r\nhello\r\n0\r\n\r\n"):
            status, headers, body = ask(raw)
            assert status == 400, (raw, status, body)
            assert headers.get("connection") == "close"
            assert set(json.loads(body)["error"]) >= {"message", "type", "param", "code"}
        # A body past the 64K memory budget (though under --max-body): 503.
        big = json.dumps({"model": MODEL_ID, "prompt": "x" * 100000}).encode()
        status, _, body = ask(post + b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(big) + big)
        assert status == 503 and b"memory budget" in body
        # Two requests per connection: the second response closes it.
        with socket.create_connection(("127.0.0.1", s.port), timeout=10) as sock:
            for i in range(2):
                sock.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
                status, headers, _ = read_raw_response(sock)
                assert status == 200
                assert headers.get("connection") == ("close" if i == 1 else None)
            assert sock.recv(1) == b""
    finally:
        s.stop()
    assert s.proc.returncode == 0, s.stderr_lines[-20:]


def assert_idle(http, within=5.0):
    """Asserts that /metrics comes to show no running request and no KV block in use. The engine
    publishes its gauges at the end of a step, just after it answers the step's finished requests,
    so a client can read them a moment before they settle."""
    deadline = time.monotonic() + within
    while True:
        metrics = http.get("/metrics").text
        idle = (re.search(r"^gannet_requests_running 0(\.0)?$", metrics, re.M)
                and re.search(r"^gannet_kv_blocks_used 0(\.0)?$", metrics, re.M))
        if idle:
            return
        assert time.monotonic() < deadline, metrics[:2000]
        time.sleep(0.05)


def test_non_streamed_responses_are_capped(gannet_bin):
    # 16 samples with 20 top logprobs each are held until the end; past --max-response the request
    # is cancelled and answered with a 400 that says to stream, and the server carries on.
    s = Server(gannet_bin, "--max-response", "200000")
    body = {"model": MODEL_ID, "prompt": "Once upon a time", "max_tokens": 64, "n": 16,
            "logprobs": 20, "temperature": 1.0, "seed": 3, "ignore_eos": True}
    try:
        t0 = time.time()
        r = httpx.post(s.url + "/v1/completions", json=body, timeout=120)
        assert r.status_code == 400, r.text[:300]
        err = r.json()["error"]
        assert err["code"] == "response_too_large" and "stream" in err["message"]
        assert time.time() - t0 < 60
        # The same request streamed is not held, so it is not capped.
        with httpx.stream("POST", s.url + "/v1/completions", json=dict(body, stream=True), timeout=120) as st:
            assert st.status_code == 200
            chunks = [line for line in st.iter_lines() if line.startswith("data: {")]
        assert sum(1 for c in chunks if json.loads(c[6:])["choices"][0].get("finish_reason")) == 16
        # A small one still fits, and the server's slots were given back.
        ok = httpx.post(s.url + "/v1/completions", json=dict(body, n=1, logprobs=None, max_tokens=8), timeout=60)
        assert ok.status_code == 200 and ok.json()["usage"]["completion_tokens"] == 8
        assert_idle(httpx.Client(base_url=s.url, timeout=10))
    finally:
        s.stop()
    assert s.proc.returncode == 0, s.stderr_lines[-20:]


def test_browser_guards(gannet_bin):
    s = Server(gannet_bin, "--api-key", "k", "--allowed-origins", "https://app.example, http://tool.example:3000")
    key = {"Authorization": "Bearer k"}
    try:
        # DNS rebinding: a loopback-bound server serves only loopback Host names.
        for host in (f"localhost:{s.port}", f"127.0.0.1:{s.port}", f"[::1]:{s.port}", "localhost"):
            assert httpx.get(s.url + "/v1/models", headers={**key, "Host": host}).status_code == 200, host
        r = httpx.get(s.url + "/v1/models", headers={**key, "Host": f"rebound.example:{s.port}"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "host_not_allowed"
        # A cross-site page: 403 in OpenAI's error shape, without CORS headers.
        r = httpx.post(s.url + "/v1/completions", headers={**key, "Origin": "https://evil.example"},
                       json={"model": MODEL_ID, "prompt": "Hi", "max_tokens": 1})
        assert r.status_code == 403 and set(r.json()["error"]) >= {"message", "type", "param", "code"}
        assert "access-control-allow-origin" not in r.headers
        # An allowed origin: the preflight, then the call itself carry the CORS headers.
        r = httpx.options(s.url + "/v1/completions",
                          headers={"Origin": "https://app.example", "Access-Control-Request-Method": "POST",
                                   "Access-Control-Request-Headers": "authorization,content-type"})
        assert r.status_code == 204
        assert r.headers["access-control-allow-origin"] == "https://app.example"
        assert r.headers["access-control-allow-methods"] == "GET, POST, OPTIONS"
        assert r.headers["access-control-allow-headers"] == "Authorization, Content-Type"
        r = httpx.post(s.url + "/v1/completions", headers={**key, "Origin": "http://tool.example:3000"},
                       json={"model": MODEL_ID, "prompt": "Hi", "max_tokens": 1})
        assert r.status_code == 200 and r.headers["access-control-allow-origin"] == "http://tool.example:3000"
        # Same origin needs no listing.
        assert httpx.get(s.url + "/v1/models", headers={**key, "Origin": s.url}).status_code == 200
        # The API key covers /metrics; /health stays open.
        r = httpx.get(s.url + "/metrics")
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        assert httpx.get(s.url + "/metrics", headers=key).status_code == 200
        assert httpx.get(s.url + "/health").status_code == 200
    finally:
        s.stop()
    assert s.proc.returncode == 0, s.stderr_lines[-20:]
    # Bound to all addresses, any Host is served; --metrics-no-auth opens /metrics.
    s = Server(gannet_bin, "--host", "0.0.0.0", "--api-key", "k", "--metrics-no-auth")
    try:
        r = httpx.get(s.url + "/v1/models", headers={"Authorization": "Bearer k", "Host": "gannet.lan:8080"})
        assert r.status_code == 200
        assert httpx.get(s.url + "/metrics").status_code == 200
        assert httpx.get(s.url + "/v1/models").status_code == 401
    finally:
        s.stop()
    assert s.proc.returncode == 0, s.stderr_lines[-20:]


def test_closed_log_pipe_does_not_kill_the_server(gannet_bin):
    """SIGPIPE is ignored: with the reader of its stderr gone, logging a request fails quietly."""
    proc = subprocess.Popen([str(gannet_bin), "serve", "-m", str(MODEL), "--port", "0", "-c", "1024",
                             "--kv-memory", "512M"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = b""
        deadline = time.time() + 120
        while b"serving on" not in line and time.time() < deadline and proc.poll() is None:
            line = proc.stdout.readline()
        port = int(re.search(rb":(\d+)\s*$", line.strip() + b"\n").group(1))
        proc.stdout.close()
        proc.stderr.close()  # every access-log line from now on hits a pipe with no reader
        for _ in range(3):
            assert httpx.get(f"http://127.0.0.1:{port}/health", timeout=10).status_code == 200
        time.sleep(0.2)
        assert proc.poll() is None, proc.returncode
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0


@pytest.mark.parametrize("flags, word", [
    (["--header-timeout", "0"], "--header-timeout"),
    (["--idle-timeout", "-1"], "--idle-timeout"),
    (["--max-requests-per-conn", "0"], "--max-requests-per-conn"),
    (["--max-connections", "0"], "--max-connections"),
    (["--body-rate-grace", "-1"], "--body-rate-grace"),
    (["--http-memory", "lots"], "--http-memory"),
])
def test_bad_limit_flags(gannet_bin, flags, word):
    r = subprocess.run([str(gannet_bin), "serve", "-m", "x.gguf", *flags], capture_output=True, timeout=30)
    assert r.returncode == 1 and word.encode() in r.stderr, r.stderr


# --- hostile JSON ------------------------------------------------------------------------------

def hostile_bodies():
    """Worst bodies of up to 8 MiB (the default --max-body): (name, endpoint, body)."""
    deep = "[" * 1000000 + "]" * 1000000
    msg = '{"role":"user","content":"hi"}'
    chat = lambda extra: '{"model":"m","messages":[' + msg + "]," + extra + "}"
    yield "million-deep extra field", "chat", \
        '{"messages":[{"role":"user","content":"hi","x":' + deep + "}]}"
    yield "million-deep objects", "chat", '{"a":' * 1000000
    yield "deep tool_calls", "chat", (
        '{"messages":[{"role":"assistant","content":null,"tool_calls":[{"id":"c","type":"function",'
        '"function":{"name":"f","arguments":' + deep + "}}]}]}")
    yield "100k keys", "chat", chat(",".join(f'"k{i}":1' for i in range(100000)))
    yield "huge string", "chat", '{"messages":[{"role":"user","content":"' + "a" * (6 << 20) + '"}]}'
    yield "many messages", "chat", '{"messages":[' + ",".join([msg] * 200000) + "]}"
    yield "huge logit_bias", "chat", chat('"logit_bias":{' + ",".join(f'"{i}":1' for i in range(500000)) + "}")
    yield "many stop strings", "chat", chat('"stop":[' + ",".join(['"s"'] * 1000000) + "]")
    yield "8 MiB of digits", "completions", '{"prompt":' + "9" * ((8 << 20) - 16) + "}"
    yield "8 MiB of empty arrays", "completions", '{"prompt":[' + "[]," * ((8 << 20) // 3 - 10) + "[]]}"


def test_hostile_json_is_400_and_server_stays_up(gannet_bin):
    # The default server (no API key, 8 MiB bodies): each body is a fast 400 in OpenAI's shape, and
    # the server answers /health and a normal chat request afterwards.
    s = Server(gannet_bin)
    try:
        with httpx.Client(base_url=s.url, timeout=60) as http:
            for name, endpoint, body in hostile_bodies():
                t0 = time.monotonic()
                r = http.post(f"/v1/{endpoint}" if endpoint == "completions" else "/v1/chat/completions",
                              content=body.encode(), headers={"Content-Type": "application/json"})
                elapsed = time.monotonic() - t0
                assert r.status_code == 400, (name, r.status_code, r.text[:300])
                err = r.json()["error"]
                assert set(err) >= {"message", "type", "param", "code"}, (name, err)
                assert err["type"] == "invalid_request_error", (name, err)
                assert elapsed < 5, (name, elapsed)  # 8 MiB of transfer included; parse: tens of ms
                assert http.get("/health").status_code == 200, name
        r = s.client().chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": "Hi"}],
                                               max_tokens=3)
        assert r.choices[0].finish_reason in ("stop", "length")
        assert s.proc.poll() is None
    finally:
        s.stop()
    assert s.proc.returncode == 0, s.stderr_lines[-20:]


def ambiguous_gbnf(prefix, alternatives=500):
    """A grammar whose alternatives all stay open together after `prefix`: each loops on every
    character but its own, so masking a 262k-token vocabulary would step 1000 stacks per trie
    node (seconds per token, while every other request waits)."""
    names = " | ".join(f"r{i}" for i in range(alternatives))
    rules = "\n".join(f'r{i} ::= [^{chr(0x100 + i)}]* "{chr(0x100 + i)}"' for i in range(alternatives))
    return f"root ::= {prefix} ({names})\n{rules}\n"


def test_ambiguous_grammar_is_refused_not_run(gannet_bin):
    # A grammar too costly to mask is a 400 at once when its start already is, and fails the
    # request partway (a 400, or an error event when streamed) when it becomes so later; either
    # way within about a second per mask, with the server's other requests and slots intact.
    s = Server(gannet_bin)
    body = {"model": MODEL_ID, "prompt": "Say something", "max_tokens": 8, "temperature": 0}
    try:
        with httpx.Client(base_url=s.url, timeout=60) as http:
            t0 = time.monotonic()
            r = http.post("/v1/completions", json=dict(body, grammar=ambiguous_gbnf('""')))
            assert r.status_code == 400, r.text[:300]
            assert "too ambiguous" in r.json()["error"]["message"]
            assert time.monotonic() - t0 < 10
            # "q" then "Ā" are cheap to mask; the state after them is not.
            later = dict(body, grammar=ambiguous_gbnf('"q" "\u0100"'))
            t0 = time.monotonic()
            r = http.post("/v1/completions", json=later)
            assert r.status_code == 400, r.text[:300]
            err = r.json()["error"]
            assert err["type"] == "invalid_request_error" and "partway" in err["message"], err
            assert time.monotonic() - t0 < 20
            with http.stream("POST", "/v1/completions", json=dict(later, stream=True)) as st:
                assert st.status_code == 200
                events = [json.loads(l[6:]) for l in st.iter_lines() if l.startswith("data: {")]
            assert "too ambiguous" in events[-1]["error"]["message"], events[-3:]
            assert http.get("/health").status_code == 200
            ok = http.post("/v1/completions", json=dict(body, grammar='root ::= "yes" | "no"'))
            assert ok.status_code == 200 and ok.json()["choices"][0]["text"] in ("yes", "no")
            assert_idle(http)
        assert s.proc.poll() is None
    finally:
        s.stop()
    assert s.proc.returncode == 0, s.stderr_lines[-20:]
