// models/quantize: the per-tensor types of every target (llama.cpp's mix rules and shape
// fallbacks), metadata and alignment carried over, quantize-then-dequantize error per type, and
// errors for inputs that cannot be quantized. Models are written with GgufWriter into a temp dir.
#include "models/quantize.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <random>
#include <set>

#include "formats/gguf_writer.h"
#include "tensor/quant/quant.h"

namespace gannet::models {
namespace {

struct ModelSpec {
  std::string arch = "llama";
  int n_layer = 8;
  int64_t n_embd = 256, n_kv = 64, n_ff = 256, n_vocab = 64;
  bool tied = false;
  DType weight_type = DType::kF32;  // of the matrices; norms are always F32
  uint32_t alignment = 0;           // 0: no general.alignment key
};

// Per test and process: ctest runs the tests of this file as separate processes in parallel.
std::string TempPath(const std::string& name) {
  const ::testing::TestInfo* info = ::testing::UnitTest::GetInstance()->current_test_info();
  return ::testing::TempDir() + "quantize_test_" + std::to_string(getpid()) + "_" +
         (info != nullptr ? std::string(info->name()) + "_" : std::string()) + name;
}

// Gaussian weights (std 1/sqrt(ne0)), norms near 1.
std::string WriteModel(const ModelSpec& s, const std::string& name, uint32_t seed = 1) {
  GgufWriter w;
  w.SetString("general.architecture", s.arch);
  w.SetString("general.name", name);
  w.SetUint32("general.file_type", s.weight_type == DType::kF32 ? 0 : 1);
  if (s.alignment) {
    EXPECT_TRUE(w.SetAlignment(s.alignment).ok());
  }
  w.SetUint32(s.arch + ".block_count", static_cast<uint32_t>(s.n_layer));
  w.SetUint32(s.arch + ".embedding_length", static_cast<uint32_t>(s.n_embd));
  w.SetFloat32(s.arch + ".attention.layer_norm_rms_epsilon", 1e-5f);
  const std::vector<std::string> tokens = {"<s>", "</s>", "a", "b"};
  w.SetStringArray("tokenizer.ggml.tokens", tokens);
  w.SetArray<float>("tokenizer.ggml.scores", std::vector<float>{0, 0, -1, -2});

  std::mt19937 rng(seed);
  auto add = [&](const std::string& tname, std::vector<int64_t> shape, bool matrix) {
    int64_t n = 1;
    for (int64_t d : shape) n *= d;
    std::normal_distribution<float> dist(matrix ? 0.0f : 1.0f,
                                         matrix ? 1.0f / std::sqrt(float(shape[0])) : 0.1f);
    std::vector<float> x(static_cast<size_t>(n));
    for (float& v : x) v = dist(rng);
    const DType t = matrix ? s.weight_type : DType::kF32;
    std::vector<uint8_t> bytes(static_cast<size_t>(*RowBytes(t, n)));
    EXPECT_TRUE(QuantizeRow(t, x.data(), bytes.data(), n));
    EXPECT_TRUE(w.AddTensor(tname, t, std::move(shape), std::move(bytes)).ok());
  };
  add("token_embd.weight", {s.n_embd, s.n_vocab}, true);
  for (int l = 0; l < s.n_layer; ++l) {
    const std::string p = "blk." + std::to_string(l) + ".";
    add(p + "attn_norm.weight", {s.n_embd}, false);
    add(p + "attn_q.weight", {s.n_embd, s.n_embd}, true);
    add(p + "attn_k.weight", {s.n_embd, s.n_kv}, true);
    add(p + "attn_v.weight", {s.n_embd, s.n_kv}, true);
    add(p + "attn_output.weight", {s.n_embd, s.n_embd}, true);
    add(p + "ffn_norm.weight", {s.n_embd}, false);
    add(p + "ffn_gate.weight", {s.n_embd, s.n_ff}, true);
    add(p + "ffn_up.weight", {s.n_embd, s.n_ff}, true);
    add(p + "ffn_down.weight", {s.n_ff, s.n_embd}, true);
  }
  add("output_norm.weight", {s.n_embd}, false);
  if (!s.tied) add("output.weight", {s.n_embd, s.n_vocab}, true);
  const std::string path = TempPath(name + ".gguf");
  EXPECT_TRUE(w.Write(path).ok());
  return path;
}

QuantizeOptions Options(std::string_view target, bool pure = false) {
  Result<QuantizeTarget> t = FindQuantizeTarget(target);
  EXPECT_TRUE(t.ok()) << t.status().message();
  return QuantizeOptions{.target = *t, .pure = pure, .n_threads = 2};
}

// Quantizes and returns the output's tensor types by name.
std::map<std::string, DType> QuantizeTypes(const std::string& in, const QuantizeOptions& o,
                                           std::string* out_path = nullptr) {
  const std::string out = TempPath("out_" + std::string(o.target.name) + ".gguf");
  Result<QuantizeReport> r = QuantizeModel(in, out, o);
  EXPECT_TRUE(r.ok()) << r.status().message();
  std::map<std::string, DType> types;
  auto f = GgufFile::Open(out);
  EXPECT_TRUE(f.ok()) << f.status().message();
  if (!f.ok()) return types;
  for (const GgufTensorInfo& t : (*f)->tensors()) types[t.name] = t.type;
  if (out_path) *out_path = out;
  return types;
}

std::string L(int layer, const std::string& name) {
  return "blk." + std::to_string(layer) + "." + name + ".weight";
}

// For 8 layers, llama.cpp's use_more_bits picks layers 0 (first eighth), 7 (last eighth), 3 and 6
// (every third in between).
const std::set<int> kMoreBits8 = {0, 3, 6, 7};

TEST(QuantizeTargets, NamesNumbersAndAliases) {
  EXPECT_EQ(FindQuantizeTarget("q4_k_m")->file_type, 15);
  EXPECT_EQ(FindQuantizeTarget("Q4_K")->file_type, 15);  // llama-quantize's alias
  EXPECT_EQ(FindQuantizeTarget("Q5_K")->file_type, 17);
  EXPECT_EQ(FindQuantizeTarget("Q8_0")->file_type, 7);
  EXPECT_EQ(FindQuantizeTarget("BF16")->file_type, 32);
  EXPECT_EQ(FindQuantizeTarget("18")->name, "Q6_K");
  Result<QuantizeTarget> bad = FindQuantizeTarget("Q3_K_M");
  ASSERT_FALSE(bad.ok());
  EXPECT_NE(bad.status().message().find("unknown quantization type 'Q3_K_M'"), std::string::npos);
  EXPECT_NE(bad.status().message().find("Q4_K_M"), std::string::npos);  // lists the choices
  EXPECT_FALSE(FindQuantizeTarget("").ok());
  EXPECT_FALSE(FindQuantizeTarget("99").ok());
}

TEST(QuantizeMix, Q4_K_M_FollowsLlamaCppRules) {
  const std::string in = WriteModel({}, "mix8");
  std::map<std::string, DType> t = QuantizeTypes(in, Options("Q4_K_M"));
  EXPECT_EQ(t["token_embd.weight"], DType::kQ4_K);
  EXPECT_EQ(t["output.weight"], DType::kQ6_K);
  EXPECT_EQ(t["output_norm.weight"], DType::kF32);
  for (int l = 0; l < 8; ++l) {
    const DType more = kMoreBits8.count(l) ? DType::kQ6_K : DType::kQ4_K;
    EXPECT_EQ(t[L(l, "attn_v")], more) << l;
    EXPECT_EQ(t[L(l, "ffn_down")], more) << l;
    for (const char* n : {"attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"})
      EXPECT_EQ(t[L(l, n)], DType::kQ4_K) << n;
    EXPECT_EQ(t[L(l, "attn_norm")], DType::kF32);
  }
}

TEST(QuantizeMix, OtherMixesAndUniformTypes) {
  const std::string in = WriteModel({}, "mix8b");
  std::map<std::string, DType> s = QuantizeTypes(in, Options("Q4_K_S"));
  for (int l = 0; l < 8; ++l) {
    EXPECT_EQ(s[L(l, "attn_v")], l < 4 ? DType::kQ5_K : DType::kQ4_K) << l;
    EXPECT_EQ(s[L(l, "ffn_down")], l < 1 ? DType::kQ5_K : DType::kQ4_K) << l;
  }
  EXPECT_EQ(s["output.weight"], DType::kQ6_K);

  std::map<std::string, DType> m5 = QuantizeTypes(in, Options("Q5_K_M"));
  for (int l = 0; l < 8; ++l) {
    EXPECT_EQ(m5[L(l, "attn_v")], kMoreBits8.count(l) ? DType::kQ6_K : DType::kQ5_K) << l;
    EXPECT_EQ(m5[L(l, "attn_q")], DType::kQ5_K);
  }
  std::map<std::string, DType> s5 = QuantizeTypes(in, Options("Q5_K_S"));
  EXPECT_EQ(s5[L(0, "attn_v")], DType::kQ5_K);
  EXPECT_EQ(s5[L(0, "ffn_down")], DType::kQ5_K);
  EXPECT_EQ(s5["output.weight"], DType::kQ6_K);

  // Legacy types: everything in the base type except the output projection (Q6_K); Q8_0 keeps it.
  for (auto [name, base] : {std::pair{"Q4_0", DType::kQ4_0},
                            {"Q4_1", DType::kQ4_1},
                            {"Q5_0", DType::kQ5_0},
                            {"Q5_1", DType::kQ5_1},
                            {"Q8_0", DType::kQ8_0},
                            {"Q6_K", DType::kQ6_K}}) {
    std::map<std::string, DType> u = QuantizeTypes(in, Options(name));
    EXPECT_EQ(u["output.weight"], base == DType::kQ8_0 ? DType::kQ8_0 : DType::kQ6_K) << name;
    EXPECT_EQ(u["token_embd.weight"], base) << name;
    EXPECT_EQ(u[L(3, "attn_v")], base) << name;
    EXPECT_EQ(u[L(7, "ffn_down")], base) << name;
    EXPECT_EQ(u[L(7, "ffn_norm")], DType::kF32) << name;
  }
  for (auto [name, base] : {std::pair{"F16", DType::kF16}, {"BF16", DType::kBF16}}) {
    std::map<std::string, DType> u = QuantizeTypes(in, Options(name));
    EXPECT_EQ(u["output.weight"], base) << name;
    EXPECT_EQ(u[L(0, "attn_v")], base) << name;
    EXPECT_EQ(u[L(0, "attn_norm")], DType::kF32) << name;
  }
  // --pure: the base type everywhere, output included.
  std::map<std::string, DType> pure = QuantizeTypes(in, Options("Q4_K_M", /*pure=*/true));
  for (const auto& [name, type] : pure) {
    EXPECT_EQ(type, name.find("norm") != std::string::npos ? DType::kF32 : DType::kQ4_K) << name;
  }
}

TEST(QuantizeMix, TiedEmbeddingTakesTheOutputRule) {
  ModelSpec spec;
  spec.tied = true;
  spec.n_layer = 2;
  const std::string in = WriteModel(spec, "tied");
  EXPECT_EQ(QuantizeTypes(in, Options("Q4_K_M"))["token_embd.weight"], DType::kQ6_K);
  EXPECT_EQ(QuantizeTypes(in, Options("Q4_0"))["token_embd.weight"], DType::kQ6_K);
  EXPECT_EQ(QuantizeTypes(in, Options("Q8_0"))["token_embd.weight"], DType::kQ8_0);
}

TEST(QuantizeMix, RowLengthFallbacks) {
  // n_embd 96: a multiple of 32, not of 256. ffn_down rows of 200: not even a multiple of 32.
  ModelSpec spec;
  spec.n_embd = 96;
  spec.n_kv = 32;
  spec.n_ff = 200;
  const std::string in = WriteModel(spec, "odd");
  std::map<std::string, DType> t = QuantizeTypes(in, Options("Q4_K_M"));
  EXPECT_EQ(t["output.weight"], DType::kQ8_0);  // the output rule itself picks Q8_0 for such rows
  EXPECT_EQ(t["token_embd.weight"], DType::kQ5_0);
  for (int l = 0; l < 8; ++l) {
    EXPECT_EQ(t[L(l, "attn_q")], DType::kQ5_0) << l;  // Q4_K -> Q5_0
    EXPECT_EQ(t[L(l, "attn_v")], kMoreBits8.count(l) ? DType::kQ8_0 : DType::kQ5_0)
        << l;                                          // Q6_K -> Q8_0
    EXPECT_EQ(t[L(l, "ffn_down")], DType::kF16) << l;  // no block fits
  }
  std::map<std::string, DType> q5 = QuantizeTypes(in, Options("Q5_K_S"));
  EXPECT_EQ(q5[L(0, "attn_q")], DType::kQ5_1);  // Q5_K -> Q5_1
  std::map<std::string, DType> q4 = QuantizeTypes(in, Options("Q4_0"));
  EXPECT_EQ(q4[L(0, "ffn_down")], DType::kF16);
  EXPECT_EQ(q4[L(0, "ffn_gate")], DType::kQ4_0);

  Result<QuantizeReport> r = QuantizeModel(in, TempPath("odd_q4km.gguf"), Options("Q4_K_M"));
  ASSERT_TRUE(r.ok());
  int fallbacks = 0;
  for (const TensorPlan& p : r->tensors) {
    if (!p.fallback.empty()) {
      ++fallbacks;
      EXPECT_NE(p.fallback.find("not a multiple of"), std::string::npos) << p.fallback;
    }
  }
  EXPECT_EQ(r->n_fallback, fallbacks);
  EXPECT_EQ(fallbacks, 1 + 8 * 7);  // token_embd and every matrix of every layer
}

TEST(QuantizeModel, CopiesMetadataAndKeepsAlignment) {
  ModelSpec spec;
  spec.n_layer = 2;
  spec.alignment = 64;
  spec.weight_type = DType::kF16;
  const std::string in = WriteModel(spec, "meta");
  std::string out;
  QuantizeTypes(in, Options("Q5_K_M"), &out);
  auto a = GgufFile::Open(in);
  auto b = GgufFile::Open(out);
  ASSERT_TRUE(a.ok() && b.ok());
  EXPECT_EQ((*b)->alignment(), 64u);
  for (const GgufTensorInfo& t : (*b)->tensors()) EXPECT_EQ(t.offset % 64, 0u) << t.name;
  for (const auto& [key, value] : (*a)->metadata()) {
    const GgufValue* v = (*b)->Find(key);
    ASSERT_NE(v, nullptr) << key;
    if (key == "general.file_type") continue;
    EXPECT_EQ(v->ToString(100), value.ToString(100)) << key;
  }
  EXPECT_EQ(*(*b)->GetInt("general.file_type"), 17);
  EXPECT_EQ(*(*b)->GetInt("general.quantization_version"), 2);
  EXPECT_EQ((*b)->Find("general.file_type")->type, GgufType::kUint32);
  // Same tensors, same order, same shapes.
  ASSERT_EQ((*a)->tensors().size(), (*b)->tensors().size());
  for (size_t i = 0; i < (*a)->tensors().size(); ++i) {
    EXPECT_EQ((*a)->tensors()[i].name, (*b)->tensors()[i].name);
    EXPECT_EQ((*a)->tensors()[i].shape, (*b)->tensors()[i].shape);
  }
}

// Relative RMS error of quantize-then-dequantize on Gaussian weights, per type. The bounds are the
// values measured on this data (in comments) with a margin; ggml's quantizers land in the same
// place.
TEST(QuantizeModel, RoundTripErrorPerType) {
  ModelSpec spec;
  spec.n_layer = 1;
  spec.n_vocab = 256;
  const std::string in = WriteModel(spec, "err", 7);
  auto src = GgufFile::Open(in);
  ASSERT_TRUE(src.ok());
  const std::vector<std::pair<const char*, double>> bounds = {
      {"F16", 0.0005}, {"BF16", 0.004}, {"Q8_0", 0.01}, {"Q6_K", 0.025}, {"Q5_1", 0.05},
      {"Q5_0", 0.05},  {"Q5_K", 0.05},  {"Q4_1", 0.10}, {"Q4_0", 0.10},  {"Q4_K", 0.10}};
  for (const auto& [name, bound] : bounds) {
    std::string out;
    std::map<std::string, DType> types = QuantizeTypes(in, Options(name, /*pure=*/true), &out);
    auto q = GgufFile::Open(out);
    ASSERT_TRUE(q.ok());
    double err2 = 0, ref2 = 0;
    for (const GgufTensorInfo& t : (*q)->tensors()) {
      if (t.shape.size() < 2) continue;
      EXPECT_EQ(t.type, Options(name).target.base) << t.name;
      const GgufTensorInfo* orig = (*src)->FindTensor(t.name);
      std::vector<float> x(static_cast<size_t>(t.n_elements)), y(x.size());
      DequantizeRow(orig->type, orig->data.data(), x.data(), t.n_elements);
      DequantizeRow(t.type, t.data.data(), y.data(), t.n_elements);
      for (size_t i = 0; i < x.size(); ++i) {
        err2 += (double(y[i]) - x[i]) * (double(y[i]) - x[i]);
        ref2 += double(x[i]) * x[i];
      }
    }
    const double rel = std::sqrt(err2 / ref2);
    EXPECT_LT(rel, bound) << name;
    EXPECT_GT(rel, 0.0) << name;  // it did convert
    std::printf("[ measured ] %-5s relative RMS error %.5f (bound %.4f)\n", name, rel, bound);
  }
}

TEST(QuantizeModel, ThreadCountDoesNotChangeTheBytes) {
  ModelSpec spec;
  spec.n_layer = 2;
  const std::string in = WriteModel(spec, "threads");
  auto read = [](const std::string& p) {
    std::ifstream f(p, std::ios::binary);
    return std::vector<char>(std::istreambuf_iterator<char>(f), {});
  };
  QuantizeOptions o = Options("Q4_K_M");
  o.n_threads = 1;
  ASSERT_TRUE(QuantizeModel(in, TempPath("t1.gguf"), o).ok());
  o.n_threads = 3;
  std::vector<QuantizeProgress> seen;
  o.progress = [&](const QuantizeProgress& p) { seen.push_back(p); };
  ASSERT_TRUE(QuantizeModel(in, TempPath("t3.gguf"), o).ok());
  EXPECT_EQ(read(TempPath("t1.gguf")), read(TempPath("t3.gguf")));
  ASSERT_FALSE(seen.empty());
  for (size_t i = 1; i < seen.size(); ++i)
    EXPECT_GE(seen[i].elements_done, seen[i - 1].elements_done);
  EXPECT_EQ(seen.back().elements_done, seen.back().elements_total);
  EXPECT_EQ(seen.back().tensor_index + 1, seen.back().n_tensors);
}

TEST(QuantizeModel, OverridesForOutputAndEmbedding) {
  const std::string in = WriteModel({}, "override");
  QuantizeOptions o = Options("Q4_K_M");
  o.output_type = DType::kQ8_0;
  o.token_embedding_type = DType::kF16;
  std::map<std::string, DType> t = QuantizeTypes(in, o);
  EXPECT_EQ(t["output.weight"], DType::kQ8_0);
  EXPECT_EQ(t["token_embd.weight"], DType::kF16);
  o.output_type = DType::kQ2_K;  // a type gannet does not produce
  Result<QuantizeReport> r = QuantizeModel(in, TempPath("ov.gguf"), o);
  ASSERT_FALSE(r.ok());
  EXPECT_NE(r.status().message().find("cannot quantize to q2_K"), std::string::npos)
      << r.status().message();
}

Status QuantizeStatus(const std::string& in, const std::string& out, std::string_view type) {
  return QuantizeModel(in, out, Options(type)).status();
}

TEST(QuantizeErrors, MissingFile) {
  Status st = QuantizeStatus(TempPath("does_not_exist.gguf"), TempPath("x.gguf"), "Q8_0");
  EXPECT_EQ(st.code(), StatusCode::kIoError);
  EXPECT_NE(st.message().find("does_not_exist.gguf"), std::string::npos) << st.message();
}

TEST(QuantizeErrors, QuantizedInputIsRefusedUnlessAlreadyTheTarget) {
  ModelSpec spec;
  spec.n_layer = 1;
  spec.weight_type = DType::kQ8_0;
  const std::string in = WriteModel(spec, "q8in");
  Status st = QuantizeStatus(in, TempPath("q8out.gguf"), "Q4_K_M");
  EXPECT_EQ(st.code(), StatusCode::kInvalidArgument);
  EXPECT_NE(st.message().find("already quantized (q8_0)"), std::string::npos) << st.message();
  EXPECT_NE(st.message().find("F32, F16 or BF16"), std::string::npos) << st.message();
  EXPECT_FALSE(std::filesystem::exists(TempPath("q8out.gguf")));
  // Already Q8_0 everywhere: copied.
  Result<QuantizeReport> r = QuantizeModel(in, TempPath("q8copy.gguf"), Options("Q8_0"));
  ASSERT_TRUE(r.ok()) << r.status().message();
  for (const TensorPlan& p : r->tensors) EXPECT_FALSE(p.convert) << p.name;
}

TEST(QuantizeErrors, NonFiniteWeights) {
  GgufWriter w;
  w.SetString("general.architecture", "llama");
  std::vector<float> x(64 * 2, 0.5f);
  x[64 + 5] = std::nanf("");
  std::vector<uint8_t> bytes(x.size() * 4);
  std::memcpy(bytes.data(), x.data(), bytes.size());
  ASSERT_TRUE(w.AddTensor("blk.0.attn_q.weight", DType::kF32, {64, 2}, bytes).ok());
  const std::string in = TempPath("nan.gguf");
  ASSERT_TRUE(w.Write(in).ok());
  Status st = QuantizeStatus(in, TempPath("nan_out.gguf"), "Q8_0");
  EXPECT_NE(st.message().find("'blk.0.attn_q.weight' has an infinite or NaN value in row 1"),
            std::string::npos)
      << st.message();
  EXPECT_FALSE(std::filesystem::exists(TempPath("nan_out.gguf.part")));   // no partial file left
  EXPECT_TRUE(QuantizeStatus(in, TempPath("nan_f16.gguf"), "F16").ok());  // floats pass through
}

TEST(QuantizeErrors, OutputProblems) {
  ModelSpec spec;
  spec.n_layer = 1;
  const std::string in = WriteModel(spec, "outerr");
  Status same = QuantizeStatus(in, in, "Q8_0");
  EXPECT_NE(same.message().find("the output file is the input file"), std::string::npos)
      << same.message();
  Status dir = QuantizeStatus(in, TempPath("no/such/dir/out.gguf"), "Q8_0");
  EXPECT_EQ(dir.code(), StatusCode::kIoError);
  EXPECT_NE(dir.message().find("cannot create"), std::string::npos) << dir.message();
}

TEST(QuantizeErrors, SplitFilesAndMissingArchitecture) {
  GgufWriter w;
  w.SetString("general.architecture", "llama");
  w.SetUint16("split.count", 3);
  const std::string split = TempPath("split.gguf");
  ASSERT_TRUE(w.Write(split).ok());
  Status st = QuantizeStatus(split, TempPath("split_out.gguf"), "Q8_0");
  EXPECT_NE(st.message().find("split model (3 parts)"), std::string::npos) << st.message();

  GgufWriter n;
  const std::string noarch = TempPath("noarch.gguf");
  ASSERT_TRUE(n.Write(noarch).ok());
  Status na = QuantizeStatus(noarch, TempPath("noarch_out.gguf"), "Q8_0");
  EXPECT_NE(na.message().find("general.architecture"), std::string::npos) << na.message();
}

}  // namespace
}  // namespace gannet::models
