// Tokenizer::FromGguf: tokenizer.ggml.* metadata -> VocabSpec (reference §1.5).
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

namespace gannet {

namespace {

Status OptionalId(const GgufFile& f, std::string_view key, std::optional<int32_t>* out) {
  if (!f.Find(key)) return Status::Ok();
  GANNET_ASSIGN_OR_RETURN(const int64_t v, f.GetInt(key));
  if (v < 0 || v > INT32_MAX) {
    return Status::OutOfRange("metadata key '" + std::string(key) + "' = " + std::to_string(v) +
                              " is not a token id");
  }
  *out = static_cast<int32_t>(v);
  return Status::Ok();
}

Status OptionalBool(const GgufFile& f, std::string_view key, std::optional<bool>* out) {
  if (!f.Find(key)) return Status::Ok();
  GANNET_ASSIGN_OR_RETURN(const bool v, f.GetBool(key));
  *out = v;
  return Status::Ok();
}

Result<VocabSpec> ReadSpec(const GgufFile& f) {
  VocabSpec spec;
  GANNET_ASSIGN_OR_RETURN(const std::string model, f.GetString("tokenizer.ggml.model"));
  if (model == "llama") {
    spec.model = VocabModel::kSpm;
  } else if (model == "gpt2") {
    spec.model = VocabModel::kBpe;
  } else {
    return Status::Unsupported("tokenizer model '" + model +
                               "' (tokenizer.ggml.model) is not supported; gannet handles 'llama' "
                               "(SentencePiece) and 'gpt2' (byte-level BPE)");
  }
  GANNET_ASSIGN_OR_RETURN(spec.pre, f.GetStringOr("tokenizer.ggml.pre", ""));
  GANNET_ASSIGN_OR_RETURN(spec.tokens, f.GetStringArray("tokenizer.ggml.tokens"));
  if (f.Find("tokenizer.ggml.scores")) {
    Result<std::vector<float>> scores = f.GetFloatArray("tokenizer.ggml.scores");
    if (scores.ok()) {
      spec.scores = std::move(scores).value();
    } else {  // llama.cpp also accepts integer scores
      GANNET_ASSIGN_OR_RETURN(const std::vector<int64_t> ints,
                              f.GetIntArray("tokenizer.ggml.scores"));
      spec.scores.assign(ints.begin(), ints.end());
    }
  }
  if (f.Find("tokenizer.ggml.token_type")) {
    GANNET_ASSIGN_OR_RETURN(const std::vector<int64_t> types,
                            f.GetIntArray("tokenizer.ggml.token_type"));
    spec.types.reserve(types.size());
    for (const int64_t t : types) {
      spec.types.push_back(t >= 0 && t <= 6 ? static_cast<TokenType>(t) : TokenType::kUndefined);
    }
  }
  if (spec.model == VocabModel::kBpe) {
    GANNET_ASSIGN_OR_RETURN(spec.merges, f.GetStringArray("tokenizer.ggml.merges"));
  }
  GANNET_RETURN_IF_ERROR(OptionalId(f, "tokenizer.ggml.bos_token_id", &spec.bos));
  GANNET_RETURN_IF_ERROR(OptionalId(f, "tokenizer.ggml.eos_token_id", &spec.eos));
  GANNET_RETURN_IF_ERROR(OptionalId(f, "tokenizer.ggml.eot_token_id", &spec.eot));
  GANNET_RETURN_IF_ERROR(OptionalId(f, "tokenizer.ggml.eom_token_id", &spec.eom));
  GANNET_RETURN_IF_ERROR(OptionalId(f, "tokenizer.ggml.unknown_token_id", &spec.unk));
  GANNET_RETURN_IF_ERROR(OptionalId(f, "tokenizer.ggml.padding_token_id", &spec.pad));
  GANNET_RETURN_IF_ERROR(OptionalId(f, "tokenizer.ggml.fim_pre_token_id", &spec.fim_pre));
  GANNET_RETURN_IF_ERROR(OptionalId(f, "tokenizer.ggml.fim_suf_token_id", &spec.fim_suf));
  GANNET_RETURN_IF_ERROR(OptionalId(f, "tokenizer.ggml.fim_mid_token_id", &spec.fim_mid));
  GANNET_RETURN_IF_ERROR(OptionalId(f, "tokenizer.ggml.fim_pad_token_id", &spec.fim_pad));
  GANNET_RETURN_IF_ERROR(OptionalId(f, "tokenizer.ggml.fim_rep_token_id", &spec.fim_rep));
  GANNET_RETURN_IF_ERROR(OptionalId(f, "tokenizer.ggml.fim_sep_token_id", &spec.fim_sep));
  // Deprecated spellings; llama.cpp reads them last, so they win.
  GANNET_RETURN_IF_ERROR(OptionalId(f, "tokenizer.ggml.prefix_token_id", &spec.fim_pre));
  GANNET_RETURN_IF_ERROR(OptionalId(f, "tokenizer.ggml.suffix_token_id", &spec.fim_suf));
  GANNET_RETURN_IF_ERROR(OptionalId(f, "tokenizer.ggml.middle_token_id", &spec.fim_mid));
  GANNET_RETURN_IF_ERROR(OptionalBool(f, "tokenizer.ggml.add_bos_token", &spec.add_bos));
  GANNET_RETURN_IF_ERROR(OptionalBool(f, "tokenizer.ggml.add_eos_token", &spec.add_eos));
  GANNET_RETURN_IF_ERROR(
      OptionalBool(f, "tokenizer.ggml.add_space_prefix", &spec.add_space_prefix));
  GANNET_ASSIGN_OR_RETURN(spec.model_name, f.GetStringOr("general.name", ""));
  return spec;
}

}  // namespace

Result<VocabSpec> ReadVocabSpec(const GgufFile& file) { return ReadSpec(file); }

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromGguf(const GgufFile& file) {
  Result<VocabSpec> spec = ReadSpec(file);
  if (!spec.ok()) return spec.status().WithContext("reading the tokenizer of " + file.path());
  Result<std::unique_ptr<Tokenizer>> tok = FromVocab(std::move(spec).value());
  if (!tok.ok()) return tok.status().WithContext("tokenizer of " + file.path());
  return tok;
}

}  // namespace gannet
