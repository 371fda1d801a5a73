"""`gannet pull`, `gannet list`, `gannet rm` and `-m NAME` against a local server that speaks the
Hugging Face hub's URL layout: the tree API with sizes and LFS sha256s, /resolve/ answered by a
redirect to a "CDN" path on another host name, Range requests. The server can cut a transfer
short, send corrupt bytes, ignore ranges, or say nothing at all. The files are the tiny real models
of tests/fixtures (a run on the pulled model generates the same tokens as on the fixture itself)
and a split model written here.
"""
import hashlib
import json
import os
import socket
import struct
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest

TIMEOUT = 60


def gguf_string(s: bytes) -> bytes:
    return struct.pack("<Q", len(s)) + s


def split_part(no: int, count: int) -> bytes:
    """A GGUF v3 header with llama.cpp's split keys (u16) and no tensors: a real split part's
    metadata, enough for the loader to recognise it."""
    kvs = [("general.architecture", 8, gguf_string(b"llama")),
           ("split.no", 2, struct.pack("<H", no)), ("split.count", 2, struct.pack("<H", count)),
           ("split.tensors.count", 4, struct.pack("<i", 0))]
    out = bytearray(b"GGUF" + struct.pack("<I", 3) + struct.pack("<qq", 0, len(kvs)))
    for key, t, val in kvs:
        out += gguf_string(key.encode()) + struct.pack("<i", t) + val
    out += b"\0" * ((-len(out)) % 32)
    return bytes(out) + os.urandom(4096)  # distinct bytes per part


class Hub:
    """What the server serves and how it misbehaves; records every request."""

    def __init__(self, repos):
        self.repos = repos  # "owner/repo" -> {path: bytes}
        self.requests = []  # (path, headers)
        self.interrupt_once = set()  # paths whose first transfer stops half way
        self.corrupt = set()  # paths served with a flipped byte (the tree lists the true sha)
        self.ignore_range = False
        self.hold = {}  # path -> threading.Event: half the file, then wait for the event
        self.port = 0
        self.lock = threading.Lock()

    def tree(self, repo_id):
        out = [{"type": "directory", "path": "docs", "oid": "0" * 40, "size": 0},
               {"type": "file", "path": "README.md", "oid": "1" * 40, "size": 10}]
        for path, data in sorted(self.repos[repo_id].items()):
            out.append({"type": "file", "path": path, "oid": hashlib.sha1(data).hexdigest(),
                        "size": len(data),
                        "lfs": {"oid": hashlib.sha256(data).hexdigest(), "size": len(data),
                                "pointerSize": 134}})
        return out


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def send_body(self, code, body, content_type="application/json", extra=()):
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body)))
        for k, v in extra:
            self.send_header(k, v)
        self.end_headers()
        self.wfile.write(body)

    def do_GET(self):
        hub: Hub = self.server.hub
        with hub.lock:
            hub.requests.append((self.path, dict(self.headers)))
        path = urllib.parse.unquote(self.path.split("?")[0])
        parts = path.strip("/").split("/")
        if parts[:2] == ["api", "models"] and parts[4:6] == ["tree", "main"]:
            repo_id = "/".join(parts[2:4])
            if repo_id not in hub.repos:
                return self.send_body(404, b'{"error":"Repository not found"}')
            # Pages of 2 entries linked by a Link header, as the hub paginates long lists.
            entries = hub.tree(repo_id)
            query = urllib.parse.parse_qs(urllib.parse.urlsplit(self.path).query)
            start = int(query.get("cursor", ["0"])[0])
            extra = []
            if start + 2 < len(entries):
                nxt = f"http://127.0.0.1:{hub.port}{path}?recursive=true&cursor={start + 2}"
                extra.append(("Link", f'<{nxt}>; rel="next"'))
            return self.send_body(200, json.dumps(entries[start:start + 2]).encode(), extra=extra)
        if len(parts) >= 5 and parts[2:4] == ["resolve", "main"]:
            repo_id, file = "/".join(parts[:2]), "/".join(parts[4:])
            data = hub.repos.get(repo_id, {}).get(file)
            if data is None:
                return self.send_body(404, b"Entry not found", "text/plain")
            # The hub sends large files to a CDN on another host name, with the sha256 as
            # X-Linked-Etag on the redirect.
            self.send_response(302)
            where = urllib.parse.quote(f"/cdn/{repo_id}/{file}")
            self.send_header("Location", f"http://localhost:{hub.port}{where}")
            self.send_header("X-Linked-Etag", '"' + hashlib.sha256(data).hexdigest() + '"')
            self.send_header("X-Linked-Size", str(len(data)))
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        if parts[0] == "cdn":
            return self.serve_file("/".join(parts[1:3]), "/".join(parts[3:]))
        self.send_body(404, b"not found", "text/plain")

    def serve_file(self, repo_id, file):
        hub: Hub = self.server.hub
        data = hub.repos[repo_id][file]
        key = f"{repo_id}/{file}"
        if key in hub.corrupt:
            data = data[:len(data) // 2] + bytes([data[len(data) // 2] ^ 0xFF]) + data[len(data) // 2 + 1:]
        start = 0
        rng = self.headers.get("Range")
        if rng and not hub.ignore_range:
            start = int(rng.removeprefix("bytes=").split("-")[0])
            self.send_response(206)
            self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
        else:
            self.send_response(200)
        self.send_header("ETag", '"' + hashlib.md5(data).hexdigest() + '"')  # a CDN's, not a sha256
        self.send_header("Content-Length", str(len(data) - start))
        self.end_headers()
        with hub.lock:
            cut = key in hub.interrupt_once
            hub.interrupt_once.discard(key)
        if cut:
            self.wfile.write(data[start:start + (len(data) - start) // 2])
            self.wfile.flush()
            self.close_connection = True
            self.connection.shutdown(socket.SHUT_RDWR)
            return
        if key in hub.hold:
            half = start + (len(data) - start) // 2
            self.wfile.write(data[start:half])
            self.wfile.flush()
            hub.hold[key].wait(30)
            start = half
        self.wfile.write(data[start:])


@pytest.fixture
def hub(fixtures):
    tiny = fixtures / "tiny"
    repos = {
        "test/tiny-llama-GGUF": {
            "tiny-llama-Q4_K_M.gguf": (tiny / "tiny-llama-q.gguf").read_bytes(),
            "tiny-llama-F32.gguf": (tiny / "tiny-llama-f32.gguf").read_bytes(),
        },
        "test/tiny-qwen2": {"sub dir/qwen2-f32.gguf": (tiny / "tiny-qwen2-f32.gguf").read_bytes()},
        "test/split-GGUF": {f"Q8_0/big-Q8_0-{i:05d}-of-00003.gguf": split_part(i - 1, 3)
                            for i in (1, 2, 3)},
    }
    state = Hub(repos)
    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    server.daemon_threads = True
    server.hub = state
    state.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield state
    server.shutdown()
    server.server_close()


@pytest.fixture
def store(tmp_path):
    return tmp_path / "store"


def gannet(gannet_bin, store, *args, hub=None, env=None, timeout=TIMEOUT):
    e = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN", "GANNET_HUB_URL")}
    e["GANNET_MODELS"] = str(store)
    if hub is not None:
        e["GANNET_HUB_URL"] = f"http://127.0.0.1:{hub.port}"
    e.update(env or {})
    return subprocess.run([str(gannet_bin), *map(str, args)], capture_output=True, timeout=timeout,
                          env=e)


def error_line(r):
    assert r.returncode not in (0,) and r.returncode < 128, (r.returncode, r.stderr)
    assert b"Sanitizer" not in r.stderr, r.stderr.decode()  # the sanitizer build runs this too
    lines = [l for l in r.stderr.decode().splitlines() if l.startswith("gannet: error: ")]
    assert len(lines) == 1, r.stderr.decode()
    return lines[0]


def store_files(store):
    return sorted(str(p.relative_to(store)) for p in store.rglob("*") if p.is_file())


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def last_json(r):
    return json.loads(r.stdout.decode().strip().splitlines()[-1])


def test_pull_by_quant_list_run_rm(gannet_bin, fixtures, hub, store):
    r = gannet(gannet_bin, store, "pull", "test/tiny-llama-GGUF:q4_k_m", hub=hub)
    assert r.returncode == 0, r.stderr
    assert "pulled test/tiny-llama-GGUF:Q4_K_M" in r.stdout.decode()
    stored = store / "test" / "tiny-llama-GGUF" / "tiny-llama-Q4_K_M.gguf"
    assert sha256(stored) == sha256(fixtures / "tiny" / "tiny-llama-q.gguf")
    manifest = json.loads((store / "test" / "tiny-llama-GGUF" /
                           "tiny-llama-Q4_K_M.gguf.manifest.json").read_text())
    assert manifest["files"][0]["sha256"] == sha256(stored)
    assert manifest["files"][0]["size"] == stored.stat().st_size
    assert manifest["files"][0]["url"].endswith("/test/tiny-llama-GGUF/resolve/main/tiny-llama-Q4_K_M.gguf")
    # The hub's redirect was followed; the progress went to stderr as plain lines (not a tty).
    paths = [p for p, _ in hub.requests]
    assert any(p.startswith("/api/models/test/tiny-llama-GGUF/tree/main") for p in paths)
    assert any("cursor=2" in p for p in paths)  # the list's second page was followed
    assert "/cdn/test/tiny-llama-GGUF/tiny-llama-Q4_K_M.gguf" in paths
    assert "\r" not in r.stderr.decode() and "tiny-llama-Q4_K_M.gguf" in r.stderr.decode()

    # A second pull finds it in place and transfers nothing.
    n = len(hub.requests)
    r = gannet(gannet_bin, store, "pull", "test/tiny-llama-GGUF:Q4_K_M", hub=hub)
    assert r.returncode == 0 and "already in the store" in r.stderr.decode(), r.stderr
    assert not any(p.startswith("/cdn/") for p, _ in hub.requests[n:])

    # The other quant by its file path; without a tag the repository is ambiguous... except that
    # Q4_K_M is the default.
    r = gannet(gannet_bin, store, "pull", "test/tiny-llama-GGUF/tiny-llama-F32.gguf", hub=hub)
    assert r.returncode == 0, r.stderr
    r = gannet(gannet_bin, store, "list", "--json")
    listed = {m["name"]: m for m in json.loads(r.stdout)}
    assert set(listed) == {"test/tiny-llama-GGUF:Q4_K_M", "test/tiny-llama-GGUF:F32"}
    assert listed["test/tiny-llama-GGUF:F32"]["size"] == (fixtures / "tiny" / "tiny-llama-f32.gguf").stat().st_size
    table = gannet(gannet_bin, store, "list").stdout.decode()
    assert "NAME" in table and "Q4_K_M" in table and str(stored) in table

    # run -m with a store name generates what the fixture file generates.
    args = ["-p", "hello", "-n", "6", "--temp", "0", "--json", "-t", "1"]
    want = last_json(gannet(gannet_bin, store, "run", "-m", fixtures / "tiny" / "tiny-llama-q.gguf", *args))
    for name in ("test/tiny-llama-GGUF:Q4_K_M", "test/tiny-llama-GGUF", "tiny-llama-Q4_K_M.gguf",
                 "test/tiny-llama-GGUF/tiny-llama-Q4_K_M.gguf"):
        r = gannet(gannet_bin, store, "run", "-m", name, *args)
        assert r.returncode == 0, (name, r.stderr)
        assert last_json(r)["gen_ids"] == want["gen_ids"], name
    f32 = last_json(gannet(gannet_bin, store, "run", "-m", "test/tiny-llama-GGUF:f32", *args))
    assert f32["gen_ids"] == last_json(gannet(gannet_bin, store, "run", "-m",
                                              fixtures / "tiny" / "tiny-llama-f32.gguf", *args))["gen_ids"]
    # A path always wins over a store name: a file named like one is loaded as a file.
    assert "not in the store" not in gannet(gannet_bin, store, "run", "-m", "nope/none:Q4", *args).stderr.decode()
    assert "gannet pull nope/none:Q4" in error_line(gannet(gannet_bin, store, "run", "-m", "nope/none:Q4", *args))

    # rm: by quant name; then the repository name alone is the one left.
    r = gannet(gannet_bin, store, "rm", "test/tiny-llama-GGUF:Q4_K_M")
    assert r.returncode == 0, r.stderr
    assert not stored.exists()
    r = gannet(gannet_bin, store, "rm", "test/tiny-llama-GGUF")
    assert r.returncode == 0, r.stderr
    assert store_files(store) == []
    assert "no models" in gannet(gannet_bin, store, "list").stdout.decode()


def test_ambiguous_names(gannet_bin, hub, store):
    hub.repos["test/tiny-llama-GGUF"]["tiny-llama-it-Q4_K_M.gguf"] = \
        hub.repos["test/tiny-llama-GGUF"]["tiny-llama-Q4_K_M.gguf"]
    line = error_line(gannet(gannet_bin, store, "pull", "test/tiny-llama-GGUF", hub=hub))
    assert "ambiguous" in line and "tiny-llama-it-Q4_K_M.gguf" in line and "tiny-llama-Q4_K_M.gguf" in line
    line = error_line(gannet(gannet_bin, store, "pull", "test/tiny-llama-GGUF:Q2_K", hub=hub))
    assert "no Q2_K model" in line and "tiny-llama-F32.gguf" in line
    for f in ("tiny-llama-Q4_K_M.gguf", "tiny-llama-it-Q4_K_M.gguf"):
        assert gannet(gannet_bin, store, "pull", f"test/tiny-llama-GGUF/{f}", hub=hub).returncode == 0
    line = error_line(gannet(gannet_bin, store, "rm", "test/tiny-llama-GGUF:Q4_K_M"))
    assert "2 stored models" in line
    line = error_line(gannet(gannet_bin, store, "run", "-m", "test/tiny-llama-GGUF", "-p", "x"))
    assert "2 stored models" in line
    assert len(store_files(store)) == 4  # nothing removed


def test_subfolder_and_split_model(gannet_bin, hub, store):
    r = gannet(gannet_bin, store, "pull", "test/tiny-qwen2", hub=hub)  # the only model: no tag needed
    assert r.returncode == 0, r.stderr
    assert (store / "test" / "tiny-qwen2" / "sub dir" / "qwen2-f32.gguf").is_file()
    r = gannet(gannet_bin, store, "pull", "test/split-GGUF:Q8_0", hub=hub)
    assert r.returncode == 0, r.stderr
    assert "split model" in r.stdout.decode()
    parts = sorted((store / "test" / "split-GGUF" / "Q8_0").glob("*.gguf"))
    assert [p.name for p in parts] == [f"big-Q8_0-{i:05d}-of-00003.gguf" for i in (1, 2, 3)]
    for p in parts:
        assert sha256(p) == hashlib.sha256(hub.repos["test/split-GGUF"][f"Q8_0/{p.name}"]).hexdigest()
    listed = json.loads(gannet(gannet_bin, store, "list", "--json").stdout)
    split = [m for m in listed if m["name"] == "test/split-GGUF:Q8_0"]
    assert split and split[0]["files"] == 3
    line = error_line(gannet(gannet_bin, store, "run", "-m", "test/split-GGUF:Q8_0", "-p", "x"))
    assert "part 1 of a split model (3 parts)" in line and "llama-gguf-split --merge" in line
    assert gannet(gannet_bin, store, "rm", "test/split-GGUF:Q8_0").returncode == 0
    assert not (store / "test" / "split-GGUF").exists()


@pytest.mark.parametrize("ignore_range", [False, True])
def test_interrupted_transfer_resumes(gannet_bin, fixtures, hub, store, ignore_range):
    key = "test/tiny-llama-GGUF/tiny-llama-F32.gguf"
    hub.interrupt_once.add(key)
    hub.ignore_range = ignore_range
    r = gannet(gannet_bin, store, "pull", "test/tiny-llama-GGUF:F32", hub=hub)
    line = error_line(r)
    assert "interrupted" in line and "resume" in line, line
    part = store / "test" / "tiny-llama-GGUF" / "tiny-llama-F32.gguf.part"
    size = (fixtures / "tiny" / "tiny-llama-f32.gguf").stat().st_size
    assert 0 < part.stat().st_size < size
    assert "no models" in gannet(gannet_bin, store, "list").stdout.decode()
    half = part.stat().st_size

    n = len(hub.requests)
    r = gannet(gannet_bin, store, "pull", "test/tiny-llama-GGUF:F32", hub=hub)
    assert r.returncode == 0, r.stderr
    cdn = [h for p, h in hub.requests[n:] if p.startswith("/cdn/")]
    assert len(cdn) == 1 and cdn[0].get("Range") == f"bytes={half}-"
    if not ignore_range:
        assert f"resumed from byte {half}" in r.stderr.decode()
    final = store / "test" / "tiny-llama-GGUF" / "tiny-llama-F32.gguf"
    assert sha256(final) == sha256(fixtures / "tiny" / "tiny-llama-f32.gguf")
    assert not part.exists()


def test_second_pull_of_the_same_file_waits_its_turn(gannet_bin, fixtures, hub, store):
    key = "test/tiny-llama-GGUF/tiny-llama-F32.gguf"
    release = threading.Event()
    hub.hold[key] = release
    env = {k: v for k, v in os.environ.items() if k not in ("HF_TOKEN",)}
    env.update(GANNET_MODELS=str(store), GANNET_HUB_URL=f"http://127.0.0.1:{hub.port}")
    first = subprocess.Popen([str(gannet_bin), "pull", "test/tiny-llama-GGUF:F32"], env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        part = store / "test" / "tiny-llama-GGUF" / "tiny-llama-F32.gguf.part"
        deadline = time.monotonic() + 30
        while not (part.exists() and part.stat().st_size > 0) and time.monotonic() < deadline:
            time.sleep(0.05)
        line = error_line(gannet(gannet_bin, store, "pull", "test/tiny-llama-GGUF:F32", hub=hub))
        assert "another gannet pull is downloading" in line, line
    finally:
        release.set()
    _, err = first.communicate(timeout=TIMEOUT)
    assert first.returncode == 0, err
    final = store / "test" / "tiny-llama-GGUF" / "tiny-llama-F32.gguf"
    assert sha256(final) == sha256(fixtures / "tiny" / "tiny-llama-f32.gguf")


def test_corrupt_file_rejected(gannet_bin, hub, store):
    hub.corrupt.add("test/tiny-llama-GGUF/tiny-llama-Q4_K_M.gguf")
    line = error_line(gannet(gannet_bin, store, "pull", "test/tiny-llama-GGUF:Q4_K_M", hub=hub))
    want = hashlib.sha256(hub.repos["test/tiny-llama-GGUF"]["tiny-llama-Q4_K_M.gguf"]).hexdigest()
    assert "sha256 mismatch" in line and want in line and "deleted" in line, line
    assert not store.exists() or list(store.iterdir()) == []  # not even empty folders
    assert "no models" in gannet(gannet_bin, store, "list").stdout.decode()


def test_token_stays_on_the_hub_host(gannet_bin, hub, store):
    r = gannet(gannet_bin, store, "pull", "test/tiny-qwen2", hub=hub, env={"HF_TOKEN": "s3cret"})
    assert r.returncode == 0, r.stderr
    auth = {p.split("?")[0]: h.get("Authorization") for p, h in hub.requests}
    assert auth["/api/models/test/tiny-qwen2/tree/main"] == "Bearer s3cret"
    cdn = [a for p, a in auth.items() if p.startswith("/cdn/")]
    assert cdn == [None]  # the redirect went to another host name


def test_silent_server_times_out(gannet_bin, store):
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    t0 = time.monotonic()
    r = gannet(gannet_bin, store, "pull", "--hub-url", f"http://127.0.0.1:{port}", "--timeout", "2",
               "a/b", timeout=30)
    elapsed = time.monotonic() - t0
    line = error_line(r)
    assert "2 s" in line and f"127.0.0.1:{port}" in line, line
    assert elapsed < 15
    listener.close()


def test_dripping_server_is_cut_off(gannet_bin, store):
    # A hub that answers, then sends its body a byte at a time, is as stuck as a silent one.
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    port = listener.getsockname()[1]
    stop = threading.Event()

    def drip():
        conn, _ = listener.accept()
        conn.recv(65536)
        conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n[")
        while not stop.is_set():
            try:
                conn.sendall(b" ")
            except OSError:
                return
            time.sleep(0.2)

    threading.Thread(target=drip, daemon=True).start()
    t0 = time.monotonic()
    r = gannet(gannet_bin, store, "pull", "--hub-url", f"http://127.0.0.1:{port}", "--timeout", "2",
               "a/b", timeout=30)
    elapsed = time.monotonic() - t0
    stop.set()
    line = error_line(r)
    assert "bytes/s" in line and f"127.0.0.1:{port}" in line, line
    assert elapsed < 15
    listener.close()


def test_missing_repo_and_bad_input(gannet_bin, hub, store):
    line = error_line(gannet(gannet_bin, store, "pull", "nobody/nothing", hub=hub))
    assert "no repository 'nobody/nothing'" in line and "404" in line
    line = error_line(gannet(gannet_bin, store, "pull", "test/tiny-llama-GGUF/absent.gguf", hub=hub))
    assert "no file 'absent.gguf'" in line
    for bad in ("justaname", "a/../b", "a/b/c.txt", "a/b:", "/b"):
        assert "gannet: error:" in error_line(gannet(gannet_bin, store, "pull", bad, hub=hub))
    line = error_line(gannet(gannet_bin, store, "pull", "a/b", "--hub-url", "ftp://x"))
    assert "http://" in line
    # A file that is no GGUF (an HTML page with a matching digest) does not stay in the store.
    hub.repos["test/html"] = {"page-Q8_0.gguf": b"<html><body>rate limited</body></html>"}
    line = error_line(gannet(gannet_bin, store, "pull", "test/html", hub=hub))
    assert "not a usable GGUF file" in line and "removed" in line, line
    assert store_files(store) == []
    line = error_line(gannet(gannet_bin, store, "rm", "test/none"))
    assert "no model 'test/none'" in line
    # Nothing listening.
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    line = error_line(gannet(gannet_bin, store, "pull", "--hub-url", f"http://127.0.0.1:{port}", "a/b"))
    assert f"127.0.0.1:{port}" in line


def test_serve_chat_bench_take_store_names(gannet_bin, hub, store):
    assert gannet(gannet_bin, store, "pull", "test/tiny-llama-GGUF:Q4_K_M", hub=hub).returncode == 0
    path = str(store / "test" / "tiny-llama-GGUF" / "tiny-llama-Q4_K_M.gguf")
    r = gannet(gannet_bin, store, "bench", "-m", "test/tiny-llama-GGUF:Q4_K_M", "-p", "8", "-n", "4",
               "-r", "1", "--json")
    assert r.returncode == 0, r.stderr
    assert json.loads(r.stdout.decode().splitlines()[-1])["model"] == path
    r = gannet(gannet_bin, store, "chat", "-m", "tiny-llama-Q4_K_M.gguf", "-n", "4")  # stdin: EOF
    assert r.returncode == 0 and path in r.stdout.decode() + r.stderr.decode(), r.stderr
    env = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    env["GANNET_MODELS"] = str(store)
    server = subprocess.Popen([str(gannet_bin), "serve", "-m", "test/tiny-llama-GGUF", "--port", "0",
                               "-c", "256"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        line = server.stdout.readline().decode()
        assert "serving on http://" in line, server.stderr.read1().decode() if server.poll() else line
        url = line.split("serving on ")[1].strip()
        models = json.loads(urllib.request.urlopen(url + "/v1/models", timeout=10).read())
        assert models["data"][0]["id"] == "tiny-llama-Q4_K_M"
    finally:
        server.terminate()
        server.wait(timeout=30)
