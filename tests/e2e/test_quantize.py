"""`gannet quantize` end to end: the real binary against llama.cpp (through llama-cpp-python).

- Every target on a model whose rows take K-quants, and the common targets on the tiny fixtures (whose
  rows mostly do not, so the fallbacks are exercised): gannet's file must hold the same tensor types as
  llama.cpp's own quantizer (llama_model_quantize) writes, the same bytes in every tensor, and the same
  metadata values.
- The quantized files are read by the gguf package, run in `gannet run`, load in llama.cpp, and
  llama.cpp's logits on them agree with gannet's (`gannet dump`) on the same file; llama.cpp's logits on
  the quantized file stay close to its logits on the F32 source.
- Bad input gets one error line.
"""
import ctypes
import json
import subprocess
import sys
from pathlib import Path

import gguf
import numpy as np
import pytest

llama_cpp = pytest.importorskip("llama_cpp")

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "tools"))
import make_tiny_models  # noqa: E402

TIMEOUT = 300
PROMPT = "hello world the model of tiny gannet token"
LLAMA_FTYPE = {"Q4_0": 2, "Q4_1": 3, "Q5_0": 8, "Q5_1": 9, "Q8_0": 7, "Q4_K_S": 14, "Q4_K_M": 15,
               "Q5_K_S": 16, "Q5_K_M": 17, "Q6_K": 18, "F16": 1, "BF16": 32}
# Mean over positions of the cosine between llama.cpp's logits on the quantized file and on the F32
# source. Random tiny models amplify rounding more than trained ones; measured minima over the fixtures
# (tiny-gemma3 is the most sensitive): Q8_0 0.9993, Q5_K_M 0.985, Q4_K_M 0.980, Q4_0 0.940.
MIN_MEAN_COS_VS_F32 = {"Q8_0": 0.998, "Q5_K_M": 0.97, "Q4_K_M": 0.96, "Q4_0": 0.90}
# gannet and llama.cpp on the same quantized file: measured minimum cosine over positions 0.9994
# (llama.cpp also rounds activations to 8 bits; gannet's kernels differ in those details).
MIN_COS_SAME_FILE = 0.995


def run(gannet_bin, *args):
    return subprocess.run([str(gannet_bin), *map(str, args)], capture_output=True, timeout=TIMEOUT)


def gannet_quantize(gannet_bin, src, dst, qtype, *extra):
    r = run(gannet_bin, "quantize", src, dst, qtype, "-t", "2", *extra)
    assert r.returncode == 0, r.stderr.decode()
    return r


def llama_quantize(src: Path, dst: Path, qtype: str) -> Path:
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = LLAMA_FTYPE[qtype]
    p.nthread = 1
    assert llama_cpp.llama_model_quantize(str(src).encode(), str(dst).encode(), ctypes.byref(p)) == 0
    return dst


@pytest.fixture(scope="module")
def kquant_model(tmp_path_factory) -> Path:
    """A llama model whose every row length is a multiple of 256 (so K-quants apply), 8 layers so that
    the mixes' layer rules pick different layers."""
    spec = make_tiny_models.Spec(name="k-llama", arch="llama", seed=4242, n_layer=8, n_embd=256, n_head=4,
                                 n_head_kv=2, head_dim=64, n_ff=256, n_vocab=320, tied=False)
    path = tmp_path_factory.mktemp("kq") / "k-llama-f32.gguf"
    make_tiny_models.write_model(spec, path)
    return path


def tensors_by_name(path: Path):
    return {t.name: t for t in gguf.GGUFReader(str(path)).tensors}


def metadata(path: Path):
    out = {}
    for f in gguf.GGUFReader(str(path)).fields.values():
        if f.name.startswith("GGUF."):
            continue
        v = f.contents()
        out[f.name] = v.tolist() if hasattr(v, "tolist") else v
    return out


def assert_same_as_llama_quantize(ours: Path, theirs: Path):
    a, b = tensors_by_name(ours), tensors_by_name(theirs)
    assert sorted(a) == sorted(b)
    types = {n: (a[n].tensor_type.name, b[n].tensor_type.name) for n in a}
    assert {n: t for n, t in types.items() if t[0] != t[1]} == {}, "tensor types differ from llama.cpp's"
    differ = [n for n in a if a[n].data.tobytes() != b[n].data.tobytes()]
    assert differ == [], f"tensor bytes differ from llama.cpp's: {differ[:5]}"
    assert metadata(ours) == metadata(theirs)


@pytest.mark.parametrize("qtype", list(LLAMA_FTYPE))
def test_kquant_model_matches_llama_quantize(gannet_bin, kquant_model, tmp_path, qtype):
    ours = tmp_path / f"gannet-{qtype}.gguf"
    gannet_quantize(gannet_bin, kquant_model, ours, qtype)
    assert_same_as_llama_quantize(ours, llama_quantize(kquant_model, tmp_path / f"llama-{qtype}.gguf", qtype))


@pytest.mark.parametrize("model", ["tiny-llama-f32", "tiny-qwen2-f32", "tiny-gemma3-f32"])
@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_K_M", "Q5_K_M", "Q4_0"])
def test_tiny_fixtures_match_llama_quantize(gannet_bin, fixtures, tmp_path, model, qtype):
    src = fixtures / "tiny" / f"{model}.gguf"
    ours = tmp_path / f"gannet-{qtype}.gguf"
    gannet_quantize(gannet_bin, src, ours, qtype)
    assert_same_as_llama_quantize(ours, llama_quantize(src, tmp_path / f"llama-{qtype}.gguf", qtype))


def test_f16_input_matches_llama_quantize(gannet_bin, kquant_model, tmp_path):
    f16 = tmp_path / "k-llama-f16.gguf"
    gannet_quantize(gannet_bin, kquant_model, f16, "F16")
    ours = tmp_path / "gannet-q4km.gguf"
    r = gannet_quantize(gannet_bin, f16, ours, "Q4_K_M")
    assert b"Q4_K_M" in r.stdout and b"q6_K" in r.stdout  # the summary names the target and the types
    assert_same_as_llama_quantize(ours, llama_quantize(f16, tmp_path / "llama-q4km.gguf", "Q4_K_M"))


def gannet_logits(gannet_bin, model: Path, out: Path):
    r = run(gannet_bin, "dump", "-m", model, "-p", PROMPT, "-o", out, "--filter", "result_output", "-t", "1")
    assert r.returncode == 0, r.stderr.decode()
    doc = json.loads((out / "manifest.json").read_text())
    t = doc["tensors"][-1]
    return doc["tokens"], np.fromfile(out / t["file"], dtype=np.float32).reshape(t["shape"])


def llama_logits(model: Path, ids):
    llm = llama_cpp.Llama(model_path=str(model), n_ctx=64, logits_all=True, n_threads=1, n_threads_batch=1,
                          verbose=False)
    llm.eval(ids)
    return np.array(llm.scores[: len(ids)], dtype=np.float64)


def cosines(a, b):
    return (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)


@pytest.mark.parametrize("model", ["tiny-llama-f32", "tiny-qwen2-f32", "tiny-gemma3-f32", "k-llama"])
@pytest.mark.parametrize("qtype", ["Q8_0", "Q4_K_M", "Q5_K_M", "Q4_0"])
def test_quantized_model_runs_and_agrees_with_llama_cpp(gannet_bin, fixtures, kquant_model, tmp_path, model, qtype):
    src = kquant_model if model == "k-llama" else fixtures / "tiny" / f"{model}.gguf"
    q = tmp_path / f"{model}-{qtype}.gguf"
    gannet_quantize(gannet_bin, src, q, qtype)

    # The gguf package reads it.
    reader = gguf.GGUFReader(str(q))
    assert int(reader.fields["general.file_type"].contents()) == LLAMA_FTYPE[qtype]
    assert len(reader.tensors) == len(gguf.GGUFReader(str(src)).tensors)

    # gannet runs it.
    r = run(gannet_bin, "run", "-m", q, "-p", "hello", "-n", "4", "--temp", "0", "--json", "-t", "1")
    assert r.returncode == 0, r.stderr.decode()
    assert len(json.loads(r.stdout.decode().strip().splitlines()[-1])["gen_ids"]) >= 1

    # llama.cpp loads it and computes what gannet computes.
    ids, ours = gannet_logits(gannet_bin, q, tmp_path / "dump")
    theirs = llama_logits(q, ids)
    assert ours.shape == theirs.shape
    assert cosines(ours, theirs).min() > MIN_COS_SAME_FILE

    # And the quantized model stays close to the F32 one.
    reference = llama_logits(src, ids)
    mean_cos = float(cosines(theirs, reference).mean())
    assert mean_cos > MIN_MEAN_COS_VS_F32[qtype], mean_cos


def test_help_lists_types(gannet_bin):
    r = run(gannet_bin, "quantize", "--help")
    assert r.returncode == 0
    out = r.stdout.decode()
    for name in ("Q4_0", "Q4_1", "Q5_0", "Q5_1", "Q8_0", "Q4_K_S", "Q4_K_M", "Q5_K_S", "Q5_K_M", "Q6_K",
                 "F16", "BF16", "--pure", "-t,--threads"):
        assert name in out, name


def assert_one_error_line(r, *words):
    assert 0 < r.returncode < 128, r.returncode
    lines = [l for l in r.stderr.decode().splitlines() if l.strip()]
    assert len(lines) == 1 and lines[0].startswith("gannet: error: "), lines
    for w in words:
        assert w in lines[0], (w, lines[0])


def test_bad_input(gannet_bin, fixtures, tmp_path):
    f32 = fixtures / "tiny" / "tiny-llama-f32.gguf"
    out = tmp_path / "out.gguf"
    assert_one_error_line(run(gannet_bin, "quantize", tmp_path / "nope.gguf", out, "Q4_K_M"), "cannot open")
    assert_one_error_line(run(gannet_bin, "quantize", f32, out, "Q3_K_X"), "unknown quantization type 'Q3_K_X'")
    assert_one_error_line(run(gannet_bin, "quantize", fixtures / "tiny" / "tiny-llama-q.gguf", out, "Q4_K_M"),
                          "already quantized")
    assert_one_error_line(run(gannet_bin, "quantize", f32, f32, "Q8_0"), "the output file is the input file")
    assert_one_error_line(run(gannet_bin, "quantize", f32, out, "Q8_0", "--output-tensor-type", "q9"), "q9")
    assert_one_error_line(run(gannet_bin, "quantize", f32, out, "Q8_0", "--output-tensor-type", "q4_K"),
                          "cannot hold")
    assert_one_error_line(run(gannet_bin, "quantize", f32, out), "type")
    assert not out.exists() and not Path(str(out) + ".part").exists()
