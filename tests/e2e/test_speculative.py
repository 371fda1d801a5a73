"""Speculative decoding end to end on the default model: `gannet run --spec ngram` (or
`--spec draft:FILE`, the model as its own draft, or `--spec ngram+self`) and a server started with either give exactly the
tokens they give without speculation (greedy, sampled with a seed, streamed, concurrent), drafts are
accepted, and bad flags are refused."""
import concurrent.futures
import json
import subprocess
import sys
from pathlib import Path

import httpx
import pytest

from test_server import MODEL, MODEL_ID, Server

DATA = Path(__file__).resolve().parent / "data"
GROUNDED = (DATA / "spec_grounded_prompt.txt").read_text()


def run_json(gannet_bin, *flags, prompt=GROUNDED):
    r = subprocess.run([str(gannet_bin), "run", "-m", str(MODEL), "-n", "96", "--json", *flags],
                       input=prompt.encode(), capture_output=True, timeout=600)
    assert r.returncode == 0, r.stderr.decode()
    return json.loads(r.stdout.decode().strip().splitlines()[-1])


@pytest.fixture(scope="module", autouse=True)
def model_present():
    if not MODEL.is_file():
        pytest.fail(f"default model missing: {MODEL}")


def test_run_greedy_and_seeded_outputs_are_unchanged(gannet_bin):
    for flags in (["--temp", "0"], ["--temp", "0.8", "--top-p", "0.9", "--seed", "5"]):
        plain = run_json(gannet_bin, *flags, "--spec", "none")
        fast = run_json(gannet_bin, *flags, "--spec", "ngram", "--spec-max-tokens", "12")
        assert fast["gen_ids"] == plain["gen_ids"]
        assert fast["text"] == plain["text"]
        assert "speculative" not in plain
    # The greedy answer copies the function from the prompt: most drafts are accepted.
    fast = run_json(gannet_bin, "--temp", "0", "--spec", "ngram")
    spec = fast["speculative"]
    assert spec["accepted_tokens"] > 20, spec
    assert spec["accepted_tokens"] <= spec["draft_tokens"]


def test_run_with_a_draft_model_is_unchanged(gannet_bin):
    for flags in (["--temp", "0"], ["--temp", "0.8", "--top-p", "0.9", "--seed", "5"]):
        plain = run_json(gannet_bin, *flags, "--spec", "none", prompt="Write a haiku about the sea.")
        fast = run_json(gannet_bin, *flags, "--spec", f"draft:{MODEL}", "--spec-max-tokens", "4",
                        prompt="Write a haiku about the sea.")
        assert fast["gen_ids"] == plain["gen_ids"]
        assert fast["text"] == plain["text"]
        spec = fast["speculative"]
        assert 0 < spec["accepted_tokens"] <= spec["draft_tokens"], spec


def test_run_with_ngram_and_self_is_unchanged(gannet_bin):
    # The grounded prompt has n-gram matches for most steps and none for some: both drafters run.
    for flags in (["--temp", "0"], ["--temp", "0.8", "--top-p", "0.9", "--seed", "5"]):
        plain = run_json(gannet_bin, *flags, "--spec", "none")
        fast = run_json(gannet_bin, *flags, "--spec", "ngram+self", "--spec-max-tokens", "6")
        assert fast["gen_ids"] == plain["gen_ids"]
        assert fast["text"] == plain["text"]
        spec = fast["speculative"]
        assert 0 < spec["accepted_tokens"] <= spec["draft_tokens"], spec


def test_run_refuses_bad_spec_flags(gannet_bin):
    for flags, message in ((["--spec", "bogus"], "unknown speculative decoding method"),
                           (["--spec", "draft:x.gguf"], "draft model"),
                           (["--spec", "ngram", "--spec-max-tokens", "0"], "--spec-max-tokens"),
                           (["--spec", "ngram", "--spec-max-tokens", "64"], "--spec-max-tokens")):
        r = subprocess.run([str(gannet_bin), "run", "-m", str(MODEL), "-p", "hi", "-n", "2", *flags],
                           capture_output=True, timeout=120)
        assert r.returncode == 1
        assert message in r.stderr.decode()


def chat(client, content, **kw):
    return client.chat.completions.create(model=MODEL_ID, messages=[{"role": "user", "content": content}],
                                          max_tokens=80, **kw)


def test_server_outputs_are_unchanged_concurrent_and_streamed(gannet_bin):
    prompts = [GROUNDED, GROUNDED.replace("merged", "combined"), "Write a haiku about the sea.",
               "List the numbers from 1 to 30, separated by commas."]
    kinds = [dict(temperature=0), dict(temperature=0.7, seed=3)]
    answers = {}
    for spec in ("none", "ngram", f"draft:{MODEL}"):
        s = Server(gannet_bin, "--spec", spec, "--parallel", "8")
        try:
            client = s.client()
            jobs = [(p, i) for p in range(len(prompts)) for i in range(len(kinds))]
            with concurrent.futures.ThreadPoolExecutor(8) as pool:
                outs = list(pool.map(lambda j: chat(client, prompts[j[0]], **kinds[j[1]]), jobs))
            answers[spec] = [(o.choices[0].message.content, o.choices[0].finish_reason,
                              o.usage.completion_tokens) for o in outs]
            # Streamed deltas reassemble to the same text.
            stream = chat(client, prompts[0], temperature=0, stream=True)
            streamed = "".join(c.choices[0].delta.content or "" for c in stream if c.choices)
            assert streamed == answers[spec][0][0]
            m = s.metrics()
            props = httpx.get(s.url + "/props", timeout=30).json()
            assert props["speculative"] == (f"draft:{MODEL.name}" if spec.startswith("draft:") else spec)
            if spec != "none":
                assert m["gannet_spec_accepted_tokens_total"] > 0
                assert m["gannet_spec_draft_tokens_total"] >= m["gannet_spec_accepted_tokens_total"]
            else:
                assert m["gannet_spec_draft_tokens_total"] == 0
        finally:
            s.stop()
        assert s.proc.returncode == 0, s.stderr_lines[-20:]
    assert answers["ngram"] == answers["none"]
    assert answers[f"draft:{MODEL}"] == answers["none"]


def test_ngram_matches_bench_reports_every_match_length(gannet_bin):
    """bench/ngram_matches.py (the evidence for the draft classes) runs and reports a table per set."""
    script = Path(__file__).resolve().parents[2] / "bench" / "ngram_matches.py"
    r = subprocess.run([sys.executable, str(script), "-m", str(MODEL),
                        "--gannet", str(gannet_bin), "--sets", "grounded", "--max-tokens", "24"],
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr
    assert "## grounded (12 prompts, 24 tokens" in r.stdout
    rows = [l for l in r.stdout.splitlines() if l.startswith("| ") and l[2].isdigit()]
    assert rows, r.stdout
    for row in rows:
        n, drafts, rejected, mean = [c.strip() for c in row.strip("|").split("|")]
        assert 1 <= int(n) <= 4 and int(drafts) > 0 and rejected.endswith("%") and float(mean) >= 0
