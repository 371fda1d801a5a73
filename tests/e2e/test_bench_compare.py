"""bench/compare_llamacpp.py end to end on a tiny model: both engines run, the output is well formed
and the ratios are gannet/llama.cpp. No timing is asserted (CI machines are noisy); only shape,
signs and arithmetic.
"""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "bench" / "compare_llamacpp.py"


def compare(gannet_bin, *args):
    return subprocess.run([sys.executable, str(SCRIPT), "--gannet", str(gannet_bin), *map(str, args)],
                          capture_output=True, text=True, timeout=600, cwd=ROOT)


@pytest.fixture(scope="module")
def tiny(fixtures):
    return fixtures / "tiny" / "tiny-llama-q.gguf"


def test_json_report_is_well_formed(gannet_bin, tiny):
    r = compare(gannet_bin, "-m", tiny, "-p", "16", "-n", "4", "-t", "2", "--rounds", "1", "--json")
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["n_prompt"] == 16 and rep["n_gen"] == 4 and rep["threads"] == 2 and rep["rounds"] == 1
    assert len(rep["models"]) == 1
    m = rep["models"][0]
    assert m["model"] == str(tiny)
    assert len(m["rounds_raw"]) == 1
    for side in ("gannet", "llamacpp"):
        s = m[side]
        for key in ("pp_tps", "tg_tps", "effective_gbps", "roofline_share"):
            assert 0 < s[key]["min"] <= s[key]["median"] <= s[key]["max"], (side, key, s[key])
        assert s["peak_rss_bytes"] > 0
    for key in ("pp_tps", "tg_tps"):
        assert m["ratio"][key] == pytest.approx(m["gannet"][key]["median"] / m["llamacpp"][key]["median"])
    # llama.cpp's own counters saw the decodes the script made: one batch of 16, then 4 single tokens.
    raw = m["rounds_raw"][0]["llamacpp"]
    assert raw["perf_n_p_eval"] == 16 and raw["perf_n_eval"] == 4
    assert m["bytes_per_token"] == m["bytes_per_token_weights"] + m["bytes_per_token_kv"] > 0
    assert 0 < m["membw_gbps"]["min"] <= m["membw_gbps"]["max"]
    assert "AVX2 = 1" in rep["llamacpp_build"]["system_info"]
    assert rep["llamacpp_build"]["version"].startswith("llama-cpp-python")
    assert rep["machine"]["cores"] >= 1 and rep["machine"]["cpu"]
    assert "compare_llamacpp.py" in rep["command"] and "--rounds 1" in rep["command"]


def test_table_names_both_engines_and_the_command(gannet_bin, tiny):
    r = compare(gannet_bin, "-m", tiny, "-m", tiny, "-p", "8", "-n", "2", "-t", "1", "--rounds", "2")
    assert r.returncode == 0, r.stderr
    out = r.stdout
    assert out.count("## ") == 2  # one section per -m
    assert "| pp8 |" in out and "| tg2 |" in out and "gannet/llama.cpp" in out
    assert "| llama.cpp |" in out and "| gannet |" in out
    assert "llama.cpp system info:" in out and "reproduce:" in out and "machine:" in out
    assert r.stderr.count("round ") == 4  # progress: 2 models x 2 rounds


def test_bad_arguments_are_reported(gannet_bin, tiny, tmp_path):
    r = compare(gannet_bin, "-m", tmp_path / "missing.gguf", "--rounds", "1")
    assert r.returncode != 0 and "no such model file" in r.stderr
    r = compare(gannet_bin, "-m", tiny, "--rounds", "0")
    assert r.returncode != 0 and "--rounds" in r.stderr
    r = subprocess.run([sys.executable, str(SCRIPT), "--gannet", str(tmp_path / "nope"), "-m", str(tiny)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode != 0 and "gannet binary not found" in r.stderr
    # A file llama.cpp cannot load: the error names llama.cpp, nothing hangs.
    bad = tmp_path / "bad.gguf"
    bad.write_bytes(b"GGUF" + b"\0" * 60)
    r = compare(gannet_bin, "-m", bad, "-p", "4", "-n", "1", "--rounds", "1")
    assert r.returncode != 0 and ("gannet bench failed" in r.stderr or "llama.cpp" in r.stderr)


AB = ROOT / "bench" / "ab_gannet.py"


def test_ab_of_two_flag_sets_is_well_formed(gannet_bin, tiny):
    # Fusion on (A) against off (B): both run every round, medians within their ranges, B/A exact.
    r = subprocess.run([sys.executable, str(AB), "--a-bin", str(gannet_bin), "-m", str(tiny), "-p", "8", "-n", "2",
                        "-t", "2", "--rounds", "2", "--b-args=--no-fuse", "--json"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["rounds"] == 2 and rep["variants"]["B"]["args"] == ["--no-fuse"] and rep["variants"]["A"]["args"] == []
    (m,) = rep["models"]
    for v in ("A", "B"):
        for key in ("pp_tps", "tg_tps"):
            assert 0 < m[v][key]["min"] <= m[v][key]["median"] <= m[v][key]["max"]
    for key in ("pp_tps", "tg_tps"):
        assert m["ratio_b_over_a"][key] == pytest.approx(m["B"][key]["median"] / m["A"][key]["median"])
    assert r.stderr.count("round ") == 2 and "ab_gannet.py" in rep["command"]
    table = subprocess.run([sys.executable, str(AB), "--a-bin", str(gannet_bin), "-m", str(tiny), "-p", "8", "-n", "2",
                            "--rounds", "1", "--b-args=--no-fuse"], capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert table.returncode == 0 and "| pp8 |" in table.stdout and "| tg2 |" in table.stdout and "B/A" in table.stdout
    # The same variant twice is refused with one line.
    same = subprocess.run([sys.executable, str(AB), "--a-bin", str(gannet_bin), "-m", str(tiny)],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert same.returncode != 0 and "the same" in same.stderr


def test_ab_of_two_environments(gannet_bin, tiny):
    # The kernel target chosen per variant through the environment (scalar exists on every CPU;
    # an unavailable name is ignored by gannet, so the run works on any machine).
    r = subprocess.run([sys.executable, str(AB), "--a-bin", str(gannet_bin), "-m", str(tiny), "-p", "8", "-n", "2",
                        "--rounds", "1", "--a-env", "GANNET_ISA=scalar", "--b-env", "GANNET_ISA=avx2", "--json"],
                       capture_output=True, text=True, timeout=600, cwd=ROOT)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["variants"]["A"]["env"] == ["GANNET_ISA=scalar"] and rep["variants"]["B"]["env"] == ["GANNET_ISA=avx2"]
    (m,) = rep["models"]
    assert m["A"]["tg_tps"]["median"] > 0 and m["B"]["tg_tps"]["median"] > 0
    bad = subprocess.run([sys.executable, str(AB), "--a-bin", str(gannet_bin), "-m", str(tiny), "--a-env", "GANNET_ISA"],
                         capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert bad.returncode != 0 and "NAME=VALUE" in bad.stderr
