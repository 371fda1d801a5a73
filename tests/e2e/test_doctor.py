"""`gannet doctor` end to end: it passes on this machine (with and without the default model), and
fails cleanly (exit status 1, the failing check named on a FAIL line, the other checks still run)
when a check is forced to fail through GANNET_DOCTOR_FAIL and on a truncated, corrupt or missing
model file."""
import os
import re
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODEL = Path(os.environ.get("GANNET_TEST_MODEL", ROOT / "models" / "gemma-3-270m-q4_k_m.gguf"))
TIMEOUT = 300
LINE = re.compile(r"^(ok|warn|FAIL)\s+(\S+)\s+(.*)$")


def doctor(gannet_bin, *args, fail=None):
    env = dict(os.environ)
    env.pop("GANNET_DOCTOR_FAIL", None)
    if fail is not None:
        env["GANNET_DOCTOR_FAIL"] = fail
    r = subprocess.run([str(gannet_bin), "doctor", "-t", "2", *map(str, args)], capture_output=True,
                       text=True, timeout=TIMEOUT, env=env)
    checks = {}
    lines = r.stdout.strip().splitlines()
    for line in lines[:-1]:
        m = LINE.match(line)
        assert m, f"not a check line: {line!r}\n{r.stdout}"
        checks[m.group(2)] = (m.group(1), m.group(3))
    assert re.match(r"doctor: \d+ checks: \d+ ok, \d+ warn, \d+ failed$", lines[-1]), r.stdout
    return r, checks


def host_isas():
    flags = Path("/proc/cpuinfo").read_text()
    return ["scalar"] + (["avx2"] if all(f in flags.split() for f in ("avx2", "fma", "f16c")) else [])


def test_passes_on_this_machine(gannet_bin):
    r, checks = doctor(gannet_bin)
    assert r.returncode == 0, r.stdout + r.stderr
    for isa in host_isas():
        assert checks[f"matmul/{isa}"][0] == "ok"
        assert checks[f"attention/{isa}"][0] == "ok"
    assert checks["cpu"][0] in ("ok", "warn") and "kernel target" in checks["cpu"][1]
    assert re.search(r"recommended -t \d+", checks["threads"][1])
    assert re.search(r"[\d.]+ GB/s read", checks["memory-bandwidth"][1])
    assert checks["core-latency"][0] == "ok"
    assert re.match(r"\d+ ns round trip of a cache line between two threads \(cores",
                    checks["core-latency"][1])
    assert not any(v == "FAIL" for v, _ in checks.values())


def test_passes_with_the_default_model(gannet_bin):
    if not MODEL.is_file():
        pytest.skip(f"{MODEL} not fetched")
    r, checks = doctor(gannet_bin, "-m", MODEL)
    assert r.returncode == 0, r.stdout + r.stderr
    assert checks["model-load"][0] == "ok" and "vocabulary 262144" in checks["model-load"][1]
    assert checks["model-memory"][0] == "ok"
    assert re.search(r"weights \d+ MiB \+ KV cache of one \d+-token context \d+ MiB",
                     checks["model-memory"][1])
    # On a loaded shared host the measured decode may fall below a fifth of the estimate: warn.
    assert checks["model-speed"][0] in ("ok", "warn")
    assert re.search(r"estimate [\d.]+ tokens/s .* measured [\d.]+ tokens/s", checks["model-speed"][1])


def test_forced_failure(gannet_bin):
    r, checks = doctor(gannet_bin, fail="memory-bandwidth")
    assert r.returncode == 1
    assert checks["memory-bandwidth"][0] == "FAIL"
    assert "forced to fail by GANNET_DOCTOR_FAIL" in checks["memory-bandwidth"][1]
    assert checks["matmul/scalar"][0] == "ok"  # the checks after it still ran
    assert r.stdout.strip().endswith("1 failed")


def test_forced_family_failure(gannet_bin):
    r, checks = doctor(gannet_bin, fail="matmul")
    assert r.returncode == 1
    for isa in host_isas():
        assert checks[f"matmul/{isa}"][0] == "FAIL"
        assert checks[f"attention/{isa}"][0] == "ok"


def test_unknown_forced_name_is_reported(gannet_bin):
    r, checks = doctor(gannet_bin, fail="no-such-check")
    assert r.returncode == 0
    assert checks["doctor"] == ("warn", "GANNET_DOCTOR_FAIL names no check that ran: no-such-check")


def test_bad_model_files(gannet_bin, tmp_path):
    if not MODEL.is_file():
        pytest.skip(f"{MODEL} not fetched")
    truncated = tmp_path / "truncated.gguf"
    with open(MODEL, "rb") as f:
        truncated.write_bytes(f.read(4 << 20))
    corrupt = tmp_path / "corrupt.gguf"
    corrupt.write_bytes(b"GGUF" + bytes(range(256)) * 64)
    cases = {truncated: "truncated.gguf", corrupt: "corrupt.gguf", tmp_path / "missing.gguf": "missing.gguf"}
    for path, needle in cases.items():
        r, checks = doctor(gannet_bin, "-m", path)
        assert r.returncode == 1, r.stdout
        verdict, detail = checks["model-load"]
        assert verdict == "FAIL" and needle in detail, detail
        assert "model-memory" not in checks
        assert checks["matmul/scalar"][0] == "ok"
