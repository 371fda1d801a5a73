"""The gannet binary as a user meets it: --help everywhere, working subcommands on tiny models,
and bad input (corrupt files, bad options) answered with one clear error line and a non-zero exit,
never a crash. In the sanitizer build this runs the ASan/UBSan binary, so a memory error fails it.
"""
import json
import re
import struct
import subprocess
from pathlib import Path

import pytest

TIMEOUT = 60


def run(gannet_bin, *args, stdin=None):
    return subprocess.run([str(gannet_bin), *map(str, args)], input=stdin, capture_output=True,
                          timeout=TIMEOUT)


def assert_one_error_line(r, *words):
    assert r.returncode != 0, f"exit 0 for bad input; stdout={r.stdout[:300]!r}"
    assert r.returncode < 128, f"killed by a signal: {r.returncode}"
    err = r.stderr.decode("utf-8", "replace")
    lines = [l for l in err.splitlines() if l.strip()]
    assert len(lines) == 1, f"expected one error line, got:\n{err}"
    assert lines[0].startswith("gannet: error: "), lines[0]
    for w in words:
        assert w.lower() in lines[0].lower(), f"{w!r} not in {lines[0]!r}"


# --- a minimal GGUF byte builder, independent of gannet's writer ---------------------------

def gguf_string(s: bytes) -> bytes:
    return struct.pack("<Q", len(s)) + s


def build_gguf(version=3, kvs=(), tensors=(), data=b"", alignment=32, magic=b"GGUF"):
    """kvs: (key, type_id, packed value bytes); tensors: (name, dims, type, offset)."""
    out = bytearray(magic + struct.pack("<I", version))
    out += struct.pack("<qq", len(tensors), len(kvs))
    for key, t, val in kvs:
        out += gguf_string(key.encode()) + struct.pack("<i", t) + val
    for name, dims, ttype, offset in tensors:
        out += gguf_string(name.encode()) + struct.pack("<I", len(dims))
        out += b"".join(struct.pack("<q", d) for d in dims)
        out += struct.pack("<iQ", ttype, offset)
    pad = (-len(out)) % alignment
    out += b"\0" * pad
    return bytes(out) + data


ARCH_KV = ("general.architecture", 8, gguf_string(b"llama"))


# --- help and usage ---------------------------------------------------------------------------

@pytest.mark.parametrize("sub", [[], ["run"], ["tokenize"], ["inspect"]])
def test_help(gannet_bin, sub):
    r = run(gannet_bin, *sub, "--help")
    assert r.returncode == 0
    assert b"Usage" in r.stdout or b"usage" in r.stdout.lower()


@pytest.mark.parametrize("args,words", [
    ([], ["subcommand"]),
    (["frobnicate"], []),
    (["run"], ["--model"]),
    (["run", "-m", "x.gguf", "-n", "abc"], []),
    (["run", "-m", "x.gguf", "--temp", "-1", "-p", "hi"], ["temperature"]),
    (["run", "-m", "x.gguf", "--top-p", "2", "-p", "hi"], ["top_p"]),
    (["tokenize"], ["--model"]),
    (["inspect"], ["file"]),
    (["serve", "-m", "x.gguf", "--itl-factor", "0.5"], ["--itl-factor"]),
    (["serve", "-m", "x.gguf", "--parallel", "0"], ["--parallel"]),
    (["serve", "-m", "x.gguf", "--port", "70000"], ["--port"]),
])
def test_bad_usage(gannet_bin, args, words):
    assert_one_error_line(run(gannet_bin, *args), *words)


# --- corrupt and unsupported files ------------------------------------------------------------

def corrupt_cases(fixtures: Path):
    good = (fixtures / "tiny" / "tiny-llama-f32.gguf").read_bytes()
    yield "empty", b"", ["0 bytes"]
    yield "wrong_magic", b"GGML" + good[4:], ["magic"]
    yield "version_1", build_gguf(version=1, kvs=[ARCH_KV]), ["version"]
    yield "version_4", build_gguf(version=4, kvs=[ARCH_KV]), ["version"]
    yield "byte_swapped", build_gguf(version=0x03000000, kvs=[ARCH_KV]), ["byte order"]
    for cut in (3, 10, 100, 1000, len(good) // 2, len(good) - 1):
        yield f"truncated_{cut}", good[:cut], []
    yield "data_past_end", build_gguf(kvs=[ARCH_KV], tensors=[("w", [64, 4], 0, 0)], data=b"\0" * 100), ["past the end"]
    yield "overlap", build_gguf(kvs=[ARCH_KV], tensors=[("a", [32], 0, 0), ("b", [32], 0, 64)],
                               data=b"\0" * 256), ["overlap"]
    yield "misaligned", build_gguf(kvs=[ARCH_KV], tensors=[("a", [8], 0, 4)], data=b"\0" * 64), ["align"]
    yield "absurd_dims", build_gguf(kvs=[ARCH_KV], tensors=[("a", [1 << 40, 1 << 40], 0, 0)]), ["a"]
    yield "unknown_type", build_gguf(kvs=[ARCH_KV], tensors=[("a", [32], 123, 0)], data=b"\0" * 64), ["type"]
    yield "huge_string", b"GGUF" + struct.pack("<Iqq", 3, 0, 1) + struct.pack("<Q", 1 << 60), []
    yield "unknown_arch", build_gguf(kvs=[("general.architecture", 8, gguf_string(b"mamba9"))]), ["mamba9"]
    yield "missing_keys", build_gguf(kvs=[ARCH_KV]), ["missing"]


def pytest_generate_tests(metafunc):
    if "corrupt_case" in metafunc.fixturenames:
        fixtures = Path(__file__).resolve().parents[1] / "fixtures"
        cases = list(corrupt_cases(fixtures))
        metafunc.parametrize("corrupt_case", cases, ids=[c[0] for c in cases])


def test_corrupt_file_run(gannet_bin, tmp_path, corrupt_case):
    name, data, words = corrupt_case
    path = tmp_path / f"{name}.gguf"
    path.write_bytes(data)
    assert_one_error_line(run(gannet_bin, "run", "-m", path, "-p", "hi", "-n", "2"), *words)


def test_corrupt_file_inspect(gannet_bin, tmp_path, corrupt_case):
    name, data, words = corrupt_case
    path = tmp_path / f"{name}.gguf"
    path.write_bytes(data)
    r = run(gannet_bin, "inspect", path)
    if name in ("unknown_arch", "missing_keys"):
        assert r.returncode == 0  # valid GGUF: inspect shows it; only loading it as a model fails
        return
    assert_one_error_line(r, *words)


def test_missing_file(gannet_bin, tmp_path):
    assert_one_error_line(run(gannet_bin, "run", "-m", tmp_path / "nope.gguf", "-p", "hi"), "cannot open")
    assert_one_error_line(run(gannet_bin, "inspect", tmp_path), "not a regular file")


# --- working commands on the tiny fixtures ----------------------------------------------------

def test_inspect_tiny(gannet_bin, fixtures):
    r = run(gannet_bin, "inspect", fixtures / "tiny" / "tiny-gemma3-q.gguf")
    assert r.returncode == 0, r.stderr
    out = r.stdout.decode()
    assert "general.architecture" in out and "gemma3" in out
    assert "token_embd.weight" in out and "q6_K" in out


def test_tokenize_json_and_stdin(gannet_bin, fixtures):
    model = fixtures / "tiny" / "tiny-llama-f32.gguf"
    r1 = run(gannet_bin, "tokenize", "-m", model, "--json", "-p", "hello world")
    assert r1.returncode == 0, r1.stderr
    ids = json.loads(r1.stdout)["ids"]
    assert ids and all(isinstance(i, int) for i in ids)
    r2 = run(gannet_bin, "tokenize", "-m", model, "--json", stdin=b"hello world")
    assert json.loads(r2.stdout)["ids"] == ids
    r3 = run(gannet_bin, "tokenize", "-m", model, "--json", "--no-bos", "-p", "hello world")
    assert json.loads(r3.stdout)["ids"] == ids[1:]


def test_run_json_greedy_and_seed(gannet_bin, fixtures):
    model = fixtures / "tiny" / "tiny-llama-f32.gguf"
    r = run(gannet_bin, "run", "-m", model, "-p", "hello", "-n", "8", "--temp", "0", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout.decode().strip().splitlines()[-1])
    for key in ("prompt_ids", "gen_ids", "text", "timings"):
        assert key in j
    assert len(j["gen_ids"]) <= 8
    expected = json.loads((fixtures / "tiny" / "tiny-llama-f32.expected.json").read_text())
    # Greedy output is deterministic.
    r2 = run(gannet_bin, "run", "-m", model, "-p", "hello", "-n", "8", "--temp", "0", "--json", "-t", "1")
    assert json.loads(r2.stdout.decode().strip().splitlines()[-1])["gen_ids"] == j["gen_ids"]
    # Same seed, same sampled output; the sampled output uses the sampler, not argmax.
    args = ["run", "-m", model, "-p", "hello", "-n", "12", "--temp", "1.5", "--top-k", "0", "--top-p", "1",
            "--min-p", "0", "--json"]
    a = json.loads(run(gannet_bin, *args, "--seed", "7").stdout.decode().splitlines()[-1])
    b = json.loads(run(gannet_bin, *args, "--seed", "7").stdout.decode().splitlines()[-1])
    assert a["gen_ids"] == b["gen_ids"]
    assert expected["n_vocab"] > max(a["gen_ids"] + [0])


def test_run_stop_strings(gannet_bin, fixtures):
    model = fixtures / "tiny" / "tiny-llama-f32.gguf"
    base = ["run", "-m", model, "-p", "hello", "-n", "24", "--temp", "0", "--json"]
    free = json.loads(run(gannet_bin, *base).stdout.decode().splitlines()[-1])
    text = free["text"]
    assert len(text) >= 8 and free["finish_reason"] == "length"
    stop = text[len(text) // 2:len(text) // 2 + 2]
    r = run(gannet_bin, *base, "--stop", "never there", "--stop", stop)
    assert r.returncode == 0, r.stderr
    cut = json.loads(r.stdout.decode().splitlines()[-1])
    assert cut["text"] == text[:text.index(stop)]
    assert cut["finish_reason"] == "stop"
    assert cut["gen_ids"] == free["gen_ids"][:len(cut["gen_ids"])]
    # Streaming prints the same text (after the prompt) and never a byte of the stop string.
    r = run(gannet_bin, *base[:-1], "--stop", stop)
    assert r.returncode == 0, r.stderr
    assert r.stdout.decode() == "hello" + text[:text.index(stop)] + "\n"
    # Limits are checked before the model loads.
    too_many = [a for i in range(17) for a in ("--stop", f"s{i}")]
    assert_one_error_line(run(gannet_bin, "run", "-m", model, "-p", "hi", *too_many), "stop")
    assert_one_error_line(run(gannet_bin, "run", "-m", model, "-p", "hi", "--stop", "x" * 5000), "stop")


def test_run_grammar_file(gannet_bin, fixtures, tmp_path):
    model = fixtures / "tiny" / "tiny-llama-f32.gguf"
    grammar = tmp_path / "abc.gbnf"
    grammar.write_text('root ::= [a-c]+ "!"  # letters, then an exclamation mark\n')
    for seed in ("1", "2", "3"):
        r = run(gannet_bin, "run", "-m", model, "-p", "hello", "-n", "16", "--temp", "1.5", "--top-k", "0",
                "--seed", seed, "--grammar-file", grammar, "--json")
        assert r.returncode == 0, r.stderr
        j = json.loads(r.stdout.decode().splitlines()[-1])
        if j["finish_reason"] == "stop":
            assert re.fullmatch(r"[a-c]+!", j["text"]), j["text"]
        else:
            assert re.fullmatch(r"[a-c]*", j["text"]), j["text"]
    bad = tmp_path / "bad.gbnf"
    bad.write_text("root ::= missing\n")
    assert_one_error_line(run(gannet_bin, "run", "-m", model, "-p", "hi", "--grammar-file", bad),
                          "grammar", "missing")
    assert_one_error_line(run(gannet_bin, "run", "-m", model, "-p", "hi", "--grammar-file", tmp_path / "nope"),
                          "grammar", "cannot open")


def test_run_streams_text_and_speed_line(gannet_bin, fixtures):
    model = fixtures / "tiny" / "tiny-gemma3-f32.gguf"
    r = run(gannet_bin, "run", "-m", model, "-n", "4", "--temp", "0", stdin=b"hello")
    assert r.returncode == 0, r.stderr
    assert r.stdout.startswith(b"hello")
    assert b"tokens/s" in r.stderr


def test_dump_writes_every_node(gannet_bin, fixtures, tmp_path):
    model = fixtures / "tiny" / "tiny-gemma3-f32.gguf"
    out = tmp_path / "dump"
    r = run(gannet_bin, "dump", "-m", model, "-p", "hello there", "-o", out)
    assert r.returncode == 0, r.stderr
    doc = json.loads((out / "manifest.json").read_text())
    n_tokens = len(doc["tokens"])
    names = [t["name"] for t in doc["tensors"]]
    assert names[0] == "inp_scaled" and names[-1] == "result_output"
    layers = {t["layer"] for t in doc["tensors"]}
    assert layers == set(range(-1, 7))
    for t in doc["tensors"]:
        rows, cols = t["shape"]
        assert (out / t["file"]).stat().st_size == rows * cols * 4, t
    assert doc["tensors"][-1]["shape"][0] == n_tokens


def gguf_tensor_table(path):
    """name -> (bytes, ggml shape) with the gguf package, independent of gannet's reader."""
    import gguf
    return {t.name: (int(t.n_bytes), [int(x) for x in t.shape]) for t in gguf.GGUFReader(str(path)).tensors}


def test_bench_prints_well_formed_results(gannet_bin, fixtures):
    model = fixtures / "tiny" / "tiny-llama-q.gguf"
    r = run(gannet_bin, "bench", "-m", model, "-p", "24", "-n", "8", "-r", "2", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout.decode().strip().splitlines()[-1])
    for key in ("pp_tps", "tg_tps", "peak_rss_bytes", "pp_tps_stddev", "tg_tps_stddev"):
        assert key in j
    assert j["pp_tps"] > 0 and j["tg_tps"] > 0 and j["peak_rss_bytes"] > 0
    assert j["n_prompt"] == 24 and j["n_gen"] == 8 and j["repetitions"] == 2
    # Bytes per generated token: every weight tensor once, except that an untied embedding is read
    # one row at a time (tiny-llama-q has output.weight), plus the f16 K and V of every position
    # attended to, on average over the 8 tg tokens (positions 24..31 see 25..32 positions).
    f = gguf_tensor_table(model)
    emb_bytes, emb_shape = f["token_embd.weight"]
    expected_weights = sum(b for b, _ in f.values()) - emb_bytes + emb_bytes // emb_shape[1]
    assert "output.weight" in f
    assert j["bytes_per_token_weights"] == expected_weights
    n_layer, kv_width = 2, 2 * 64  # tiny-llama-q: 2 layers, 2 KV heads of 64
    mean_ctx = sum(24 + i + 1 for i in range(8)) / 8
    assert j["bytes_per_token_kv"] == round(n_layer * mean_ctx * kv_width * 2 * 2)
    assert j["bytes_per_token"] == j["bytes_per_token_weights"] + j["bytes_per_token_kv"]
    # Bandwidth: one probe before and one after each tg phase, all positive and consistent.
    assert j["membw_samples"] == 4
    assert 0 < j["membw_gbps_min"] <= j["membw_gbps"] <= j["membw_gbps_max"]
    assert j["effective_gbps"] == pytest.approx(j["bytes_per_token"] * j["tg_tps"] / 1e9, rel=1e-9)
    assert j["roofline_share"] == pytest.approx(j["effective_gbps"] / j["membw_gbps"], rel=1e-9)
    table = run(gannet_bin, "bench", "-m", model, "-p", "24", "-n", "8", "-r", "1")
    assert table.returncode == 0 and b"pp24" in table.stdout and b"tg8" in table.stdout
    out = table.stdout.decode()
    assert "bytes/token" in out and "measured GB/s" in out and "roofline" in out
    tg_row = next(l for l in out.splitlines() if "| tg8 |" in l)
    assert " MB |" in tg_row and tg_row.rstrip().endswith("% |")
    assert_one_error_line(run(gannet_bin, "bench", "-m", model, "-p", "0"), "-p")


def test_bench_spec_compares_with_and_without_speculation(gannet_bin, fixtures, tmp_path):
    model = fixtures / "tiny" / "tiny-llama-q.gguf"
    r = run(gannet_bin, "bench", "-m", model, "--spec", "ngram", "--spec-max-tokens", "4",
            "-p", "16", "-n", "24", "-r", "2", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert j["spec"] == "ngram" and j["spec_max_tokens"] == 4 and j["n_prompt"] == 16
    assert j["identical"] is True  # speculation never changes greedy output
    assert j["tg_tps_base"] > 0 and j["tg_tps_spec"] > 0
    assert j["speedup"] == pytest.approx(j["tg_tps_spec"] / j["tg_tps_base"], rel=1e-9)
    assert 0 <= j["accepted_tokens"] <= j["draft_tokens"]
    assert j["tokens_per_step"] >= 1
    # The prompt from a text file; the table names the method and the acceptance.
    text = tmp_path / "prompt.txt"
    text.write_text("one two three four five six seven eight. " * 3)
    table = run(gannet_bin, "bench", "-m", model, "--spec", "ngram", "-f", text, "-n", "16", "-r", "1")
    assert table.returncode == 0, table.stderr
    out = table.stdout.decode()
    assert "ngram (max 8)" in out and "accepted / drafted" in out and "outputs identical" in out
    assert_one_error_line(run(gannet_bin, "bench", "-m", model, "-f", text), "-f needs --spec")
    assert_one_error_line(run(gannet_bin, "bench", "-m", model, "--spec", "bogus"), "--spec")
    assert_one_error_line(run(gannet_bin, "bench", "-m", model, "--spec", "ngram", "-f",
                              tmp_path / "missing.txt"), "prompt file")



def test_bench_parallel_decodes_batches_through_the_engine(gannet_bin, fixtures):
    model = fixtures / "tiny" / "tiny-llama-q.gguf"
    r = run(gannet_bin, "bench", "-m", model, "--parallel", "1,5,3", "-p", "6", "-n", "12", "-r", "2", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert j["n_prompt"] == 6 and j["n_gen"] == 12 and j["repetitions"] == 2
    assert [x["sequences"] for x in j["runs"]] == [1, 5, 3]
    # A sequence's greedy tokens do not depend on how many decode beside it.
    assert j["identical"] is True
    for x in j["runs"]:
        assert len(x["tg_tps_runs"]) == 2 and all(t > 0 for t in x["tg_tps_runs"])
        assert x["over_first"] == pytest.approx(x["tg_tps"] / j["runs"][0]["tg_tps"], rel=1e-9)
        assert len(x["core_round_trip_ns"]) == 2 and all(t > 0 for t in x["core_round_trip_ns"])
    table = run(gannet_bin, "bench", "-m", model, "--parallel", "2", "-p", "4", "-n", "6", "-r", "1")
    assert table.returncode == 0, table.stderr
    out = table.stdout.decode()
    assert "| 2 |" in out and "ms per step" in out and "tokens identical" in out
    assert "core round trip ns" in out
    # --profile: per count, ms per step by op; every step is a pass with one embed and the
    # engine's own time between passes; the rows' shares sum to 1.
    r = run(gannet_bin, "bench", "-m", model, "--parallel", "1,4", "-p", "6", "-n", "10", "-r", "2",
            "--profile", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout.decode().strip().splitlines()[-1])
    for x in j["runs"]:
        rows = {p["op"]: p for p in x["profile"]}
        # Each sequence's prompt is one pass (or shares one) and each later token one more.
        assert 10 <= x["steps"] / 2 <= 11 + x["sequences"], x["steps"]
        assert rows["embed"]["calls_per_pass"] == 1
        assert any(op.startswith("matmul") for op in rows) and "attention" in rows
        outside = rows["outside the graph (scheduling, sampling, output)"]
        assert 0 < outside["calls_per_pass"] < 1 and outside["ms_per_step"] > 0
        assert sum(p["share"] for p in x["profile"]) == pytest.approx(1.0, abs=1e-6)
    table = run(gannet_bin, "bench", "-m", model, "--parallel", "3", "-p", "4", "-n", "6", "-r", "1",
                "--profile")
    assert table.returncode == 0, table.stderr
    assert "3 sequences profile" in table.stdout.decode() and "| ms/step |" in table.stdout.decode()
    for bad in ("0", "1,,2", "x", "3,257", "", "2,"):
        assert_one_error_line(run(gannet_bin, "bench", "-m", model, "--parallel", bad), "--parallel")
    assert_one_error_line(run(gannet_bin, "bench", "-m", model, "--parallel", "2", "-n", "1"), "--parallel")
    assert_one_error_line(run(gannet_bin, "bench", "-m", model, "--parallel", "2", "--spec", "ngram"),
                          "--parallel")
    # --temp: seeded draws over the whole vocabulary; a sequence's tokens still do not depend on
    # the count.
    r = run(gannet_bin, "bench", "-m", model, "--parallel", "1,4", "-p", "6", "-n", "12", "-r", "1",
            "--temp", "1", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert j["temperature"] == 1.0 and j["identical"] is True
    table = run(gannet_bin, "bench", "-m", model, "--parallel", "2", "-p", "4", "-n", "6", "-r", "1",
                "--temp", "0.7")
    assert table.returncode == 0, table.stderr
    assert "seeded draws at temperature 0.7" in table.stdout.decode()
    assert_one_error_line(run(gannet_bin, "bench", "-m", model, "--temp", "1"), "--temp needs --parallel")
    assert_one_error_line(run(gannet_bin, "bench", "-m", model, "--parallel", "2", "--temp", "3"), "--temp")


def test_bench_spec_with_a_draft_model(gannet_bin, fixtures):
    model = fixtures / "tiny" / "tiny-llama-f32.gguf"
    # The model as its own draft: its greedy chain is always the model's next tokens.
    r = run(gannet_bin, "bench", "-m", model, "--spec", f"draft:{model}", "--spec-max-tokens", "4",
            "-p", "16", "-n", "24", "-r", "2", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout.decode().strip().splitlines()[-1])
    assert j["spec"] == "draft:tiny-llama-f32.gguf" and j["spec_max_tokens"] == 4
    assert j["identical"] is True
    assert j["draft_tokens"] > 0 and 0 < j["accepted_tokens"] <= j["draft_tokens"]
    assert j["tokens_per_step"] > 1
    # Another model with the same vocabulary (random weights): the output is still the model's.
    draft = fixtures / "tiny" / "tiny-llama-q.gguf"
    table = run(gannet_bin, "bench", "-m", model, "--spec", f"draft:{draft}", "-p", "16", "-n", "16",
                "-r", "1")
    assert table.returncode == 0, table.stderr
    out = table.stdout.decode()
    assert "draft:tiny-llama-q.gguf (max 8)" in out and "outputs identical" in out
    # Another vocabulary, a missing file, no file: one error line each, naming what is wrong.
    gemma = fixtures / "tiny" / "tiny-gemma3-f32.gguf"
    bad = run(gannet_bin, "bench", "-m", model, "--spec", f"draft:{gemma}", "-p", "8", "-n", "4")
    assert_one_error_line(bad, "does not share the vocabulary")
    assert "tiny-gemma3-f32.gguf" in bad.stderr.decode() and "tiny-llama-f32.gguf" in bad.stderr.decode()
    assert_one_error_line(run(gannet_bin, "bench", "-m", model, "--spec", "draft:/nonexistent.gguf", "-p", "8",
                              "-n", "4"), "draft model")
    assert_one_error_line(run(gannet_bin, "bench", "-m", model, "--spec", "draft:"), "--spec")


def test_bench_profile_accounts_for_every_node(gannet_bin, fixtures):
    # tiny-llama-q: 2 layers; every node of a decode step is timed once per token.
    model = fixtures / "tiny" / "tiny-llama-q.gguf"
    r = run(gannet_bin, "bench", "-m", model, "-p", "8", "-n", "4", "-r", "2", "--profile", "--json")
    assert r.returncode == 0, r.stderr
    prof = json.loads(r.stdout.decode().strip().splitlines()[-1])["tg_profile"]
    by_op = {p["op"]: p for p in prof}
    assert by_op["attention"]["calls_per_pass"] == 2 and by_op["rope"]["calls_per_pass"] == 4
    assert by_op["embed"]["calls_per_pass"] == 1
    # Matmuls are keyed by weight type and shape: the untied output matrix is its own row.
    f = gguf_tensor_table(model)
    out_bytes, out_shape = f["output.weight"]
    assert any(p["op"].startswith("matmul ") and f" {out_shape[1]}x{out_shape[0]}" in p["op"] for p in prof)
    # Fused (the default): per layer one q/k/v group and one gate/up pair with their norms folded in.
    groups = [p for p in prof if p["op"].endswith("+ 2 grouped (norm fused)")]
    assert sum(p["calls_per_pass"] for p in groups) == 2
    glu = [p for p in prof if p["op"].startswith("matmul_glu ") and p["op"].endswith("(norm fused)")]
    assert sum(p["calls_per_pass"] for p in glu) == 2 and all(" + " in p["op"] for p in glu)
    # Unfused, every matmul of the model's graph is its own call.
    r = run(gannet_bin, "bench", "-m", model, "-p", "8", "-n", "4", "-r", "1", "--profile", "--no-fuse", "--json")
    plain = json.loads(r.stdout.decode().strip().splitlines()[-1])["tg_profile"]
    n_matmuls = sum(p["calls_per_pass"] for p in plain if p["op"].startswith("matmul "))
    assert n_matmuls == 2 * 7 + 1  # q, k, v, o, gate, up, down per layer, and the output
    assert not any("matmul_glu" in p["op"] or "grouped" in p["op"] for p in plain)
    assert sum(p["share"] for p in prof) == pytest.approx(1.0)
    assert all(p["ms_per_token"] >= 0 for p in prof)
    assert all(p["weight_gbps"] > 0 for p in prof if p["op"].startswith("matmul "))
    assert [p["ms_per_token"] for p in prof] == sorted((p["ms_per_token"] for p in prof), reverse=True)
    assert all(p["gmacs"] > 0 for p in prof if p["op"].startswith("matmul"))
    # The prompt's pass (one per repetition) runs the same ops; its matmuls multiply 8 rows at
    # once, so per token they take less time than a decode step's.
    r = run(gannet_bin, "bench", "-m", model, "-p", "8", "-n", "4", "-r", "2", "--profile", "--json")
    pp = json.loads(r.stdout.decode().strip().splitlines()[-1])["pp_profile"]
    pp_ops = {p["op"]: p for p in pp}
    assert set(pp_ops) == set(by_op)
    assert pp_ops["attention"]["calls_per_pass"] == 2 and pp_ops["embed"]["calls_per_pass"] == 1
    assert sum(p["share"] for p in pp) == pytest.approx(1.0)
    assert all(p["gmacs"] > 0 and p["weight_gbps"] > 0 for p in pp if p["op"].startswith("matmul"))
    table = run(gannet_bin, "bench", "-m", model, "-p", "8", "-n", "4", "-r", "1", "--profile")
    out = table.stdout.decode()
    assert table.returncode == 0 and "tg profile (4 tokens in 4 passes" in out and "| attention | 2 |" in out
    assert "pp profile (8 tokens in 1 passes" in out


def test_bench_bytes_per_token_of_a_tied_sliding_window_model(gannet_bin, fixtures):
    # tiny-gemma3-f32: tied embedding (read whole, as the output matrix), 7 layers of one KV head of
    # 32, layers 0-4 and 6 attend within a window of 8, layer 5 to every position.
    model = fixtures / "tiny" / "tiny-gemma3-f32.gguf"
    r = run(gannet_bin, "bench", "-m", model, "-p", "24", "-n", "8", "-r", "1", "--json")
    assert r.returncode == 0, r.stderr
    j = json.loads(r.stdout.decode().strip().splitlines()[-1])
    f = gguf_tensor_table(model)
    assert "output.weight" not in f
    assert j["bytes_per_token_weights"] == sum(b for b, _ in f.values())
    mean_ctx = sum(24 + i + 1 for i in range(8)) / 8
    assert j["bytes_per_token_kv"] == round((6 * 8 + 1 * mean_ctx) * 32 * 2 * 2)
    assert j["membw_samples"] == 2 and j["membw_gbps"] > 0


def test_run_json_schema(gannet_bin, fixtures, tmp_path):
    # The output follows the schema (checked with Python's jsonschema where it ends by itself).
    import jsonschema
    model = fixtures / "tiny" / "tiny-llama-f32.gguf"
    schema = {"type": "object", "properties": {"ok": {"type": "boolean"},
                                               "n": {"type": "integer", "minimum": 0, "maximum": 9}},
              "required": ["ok", "n"], "additionalProperties": False}
    path = tmp_path / "schema.json"
    path.write_text(json.dumps(schema))
    stops = 0
    for seed in ("1", "2", "3", "4"):
        r = run(gannet_bin, "run", "-m", model, "-p", "hello", "-n", "64", "--temp", "1.0", "--seed", seed,
                "--json-schema", path, "--json")
        assert r.returncode == 0, r.stderr
        j = json.loads(r.stdout.decode().splitlines()[-1])
        if j["finish_reason"] == "stop":
            stops += 1
            jsonschema.validate(json.loads(j["text"]), schema)
        else:
            assert j["text"].startswith("{"), j["text"]
    assert stops >= 1
    unsupported = tmp_path / "unsupported.json"
    unsupported.write_text('{"type": "array", "contains": {"type": "integer"}}')
    assert_one_error_line(run(gannet_bin, "run", "-m", model, "-p", "hi", "--json-schema", unsupported),
                          "json-schema", "'contains'")
    not_json = tmp_path / "bad.json"
    not_json.write_text("{")
    assert_one_error_line(run(gannet_bin, "run", "-m", model, "-p", "hi", "--json-schema", not_json),
                          "json-schema", "not JSON")
    grammar = tmp_path / "g.gbnf"
    grammar.write_text('root ::= "a"\n')
    r = run(gannet_bin, "run", "-m", model, "-p", "hi", "--json-schema", path, "--grammar-file", grammar)
    assert r.returncode != 0 and b"grammar-file" in r.stderr, r.stderr
