"""bench/serving.py (and bench/structured.py) end to end on the default model: it starts `gannet serve`, runs every workload
briefly and prints a well-formed report. No timing assertions (machines are noisy)."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
GANNET = os.environ.get("GANNET_BIN", str(ROOT / "build" / "bin" / "gannet"))
MODEL = os.environ.get("GANNET_TEST_MODEL", str(ROOT / "models" / "gemma-3-270m-q4_k_m.gguf"))


def run(*args):
    return subprocess.run([sys.executable, str(ROOT / "bench" / "serving.py"), *args], capture_output=True,
                          text=True, timeout=900)


def test_report_is_well_formed():
    r = run("-m", MODEL, "--gannet", GANNET, "-t", "2", "--concurrency", "1,2", "--rates", "inf",
            "--num-prompts", "3", "--max-tokens", "4", "--multiturn", "--conversations", "1", "--turns", "2",
            "--long-prompt", "--streams", "1", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    modes = [(x["mode"], x.get("concurrency", x.get("rate"))) for x in rep["runs"]]
    assert modes == [("rate", "inf"), ("concurrency", 1), ("concurrency", 2)]
    for x in rep["runs"]:
        assert x["requests"] == 3 and x["failed"] == 0
        assert 0 < x["output_tokens"] <= 12 and x["prompt_tokens"] > 0
        assert x["ttft_ms_p50"] > 0 and x["ttft_ms_p50"] <= x["ttft_ms_p99"]
        assert x["output_token_throughput"] > 0
        # Every run sends the same prompts, each run under a first line of its own: none finds an
        # earlier run's prompts in the prefix cache.
        assert x["cached_tokens"] == 0
    assert rep["throughput_ratio"]["concurrency"] == 2 and rep["throughput_ratio"]["over_single"] > 0
    lp = rep["long_prompt"]
    assert lp["long_prompt_tokens"] > 1900 and lp["itl_ms_p50_before"] > 0 and lp["itl_during_samples"] > 0
    assert lp["itl_ms_p99_during"] >= lp["itl_ms_p50_during"] > 0
    on, off = rep["multiturn_prefix_cache_on"], rep["multiturn_prefix_cache_off"]
    assert len(on["ttft_ms_median_by_turn"]) == 2
    # The second turn extends the first: with the cache on its shared prefix is found, off never.
    assert on["cached_tokens_mean_by_turn"][1] > 0
    assert off["cached_tokens_mean_by_turn"] == [0, 0]
    assert rep["multiturn_last_turn_ttft_off_over_on"] > 0


def test_decode_only_gives_fixed_output_lengths():
    # ignore_eos through the server: every request runs to exactly max_tokens.
    r = run("-m", MODEL, "--gannet", GANNET, "-t", "2", "--concurrency", "3", "--num-prompts", "3",
            "--max-tokens", "7", "--decode-only", "--json")
    assert r.returncode == 0, r.stderr
    run_ = json.loads(r.stdout)["runs"][0]
    assert run_["failed"] == 0 and run_["output_tokens"] == 21
    assert run_["prompt_tokens"] < 3 * 16


def test_concurrency_rounds_alternate_and_give_a_median_ratio():
    r = run("-m", MODEL, "--gannet", GANNET, "-t", "2", "--concurrency", "1,2", "--num-prompts", "2",
            "--max-tokens", "3", "--decode-only", "--rounds", "3", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    order = [(x["round"], x["concurrency"]) for x in rep["runs"]]
    assert order == [(0, 1), (0, 2), (1, 2), (1, 1), (2, 1), (2, 2)]
    t = rep["throughput_ratio"]
    assert t["concurrency"] == 2 and len(t["over_single_by_round"]) == 3
    assert t["over_single"] == sorted(t["over_single_by_round"])[1]


def test_burst_report_is_well_formed():
    # --burst: n requests at once beside a running stream, each to exactly max_tokens.
    r = run("-m", MODEL, "--gannet", GANNET, "-t", "2", "--burst", "3", "--rounds", "2", "--max-tokens", "5",
            "--json")
    assert r.returncode == 0, r.stderr
    bursts = json.loads(r.stdout)["bursts"]
    assert len(bursts) == 2
    for b in bursts:
        assert b["requests"] == 3 and b["failed"] == 0 and b["output_tokens"] == 15
        assert 0 < b["ttft_ms_p50"] <= b["ttft_ms_max"] and b["wall_ms"] > 0
        assert b["output_token_throughput"] * b["wall_ms"] / 1000 == pytest.approx(15)
        first = b["running_stream"]
        assert first["error"] is None and first["completion_tokens"] == 5 + 64
        assert 0 <= first["tokens_before_burst"] <= 5 + 64


def test_bad_arguments():
    r = run("--concurrency", "x", "--url", "http://127.0.0.1:9")
    assert r.returncode != 0 and "comma-separated" in r.stderr
    r = run()
    assert r.returncode != 0 and "-m MODEL or --url" in r.stderr


def test_structured_bench_report_is_well_formed():
    # bench/structured.py: constrained vs free on the same prompts, and the large-schema TTFT.
    r = subprocess.run([sys.executable, str(ROOT / "bench" / "structured.py"), "-m", MODEL, "--gannet", GANNET,
                        "-t", "2", "--rounds", "1", "--concurrency", "1,2", "--max-tokens", "48",
                        "--schema", str(ROOT / "bench" / "data" / "schema_record.json"), "--json"],
                       capture_output=True, text=True, timeout=900)
    assert r.returncode == 0, r.stdout + r.stderr
    rep = json.loads(r.stdout)
    assert [row["clients"] for row in rep["rows"]] == [1, 2]
    for row in rep["rows"]:
        assert row["output_tps_free"] > 0 and row["output_tps_schema"] > 0
        assert row["output_ratio"] == row["output_tps_schema"] / row["output_tps_free"]
    assert rep["invalid"] == [] and rep["failed"] == 0 and rep["validated"] >= 0
    assert rep["large_schema"]["ttft_schema_ms"] > 0 and rep["large_schema"]["errors"] == []
