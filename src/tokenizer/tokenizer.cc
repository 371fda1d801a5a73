#include "tokenizer/tokenizer.h"

#include <algorithm>
#include <cctype>

#include "tokenizer/bpe.h"
#include "tokenizer/spm.h"
#include "tokenizer/unicode.h"

namespace gannet {

namespace {

constexpr std::string_view kSpmSpace = "\xE2\x96\x81";  // U+2581, SentencePiece's visible space

std::string ReplaceAll(std::string_view s, std::string_view from, std::string_view to) {
  std::string out;
  out.reserve(s.size());
  size_t pos = 0;
  while (true) {
    const size_t hit = s.find(from, pos);
    if (hit == std::string_view::npos) break;
    out.append(s.substr(pos, hit - pos));
    out.append(to);
    pos = hit + from.size();
  }
  out.append(s.substr(pos));
  return out;
}

uint32_t AttrFromType(TokenType t) {
  switch (t) {
    case TokenType::kNormal:
      return TokenAttr::kNormal;
    case TokenType::kUnknown:
      return TokenAttr::kUnknown;
    case TokenType::kControl:
      return TokenAttr::kControl;
    case TokenType::kUserDefined:
      return TokenAttr::kUserDefined;
    case TokenType::kUnused:
      return TokenAttr::kUnused;
    case TokenType::kByte:
      return TokenAttr::kByte;
    default:
      return 0;  // undefined
  }
}

// The byte of an "<0xXX>" token: the hex digits at [3, 5), as far as they parse (llama.cpp strtol).
uint8_t ByteOfToken(std::string_view text) {
  unsigned value = 0;
  for (size_t i = 3; i < 5 && i < text.size(); ++i) {
    const char c = text[i];
    const int d = c >= '0' && c <= '9'   ? c - '0'
                  : c >= 'a' && c <= 'f' ? c - 'a' + 10
                  : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                         : -1;
    if (d < 0) break;
    value = value * 16 + d;
  }
  return static_cast<uint8_t>(value);
}

// clean_up_tokenization_spaces, the three in-place passes of llama.cpp's llama_detokenize.
void CleanSpaces(std::string* s) {
  std::string& text = *s;
  const auto n0 = static_cast<int64_t>(text.size());
  // " ?", " !", " .", " ," lose the space.
  int64_t total = n0 ? 1 : 0;
  for (int64_t i = 1; i < n0; ++i) {
    const char x = text[i];
    if (text[i - 1] == ' ' && (x == '?' || x == '!' || x == '.' || x == ',')) --total;
    text[total++] = x;
  }
  // " ' " -> "'".
  const int64_t n1 = total;
  total = n1 ? 1 : 0;
  for (int64_t i = 1; i < n1; ++i) {
    const char x = text[i];
    if (x == '\'' && i + 1 < n1 && text[i - 1] == ' ' && text[i + 1] == ' ') {
      --total;
      text[++i] = '\0';
    }
    text[total++] = x;
  }
  // " 's", " 'm", " 're", " 've" lose the space.
  const int64_t n2 = total;
  total = n2 ? 1 : 0;
  for (int64_t i = 1; i < n2; ++i) {
    const char x = text[i];
    if (text[i - 1] == ' ' && x == '\'' && i + 1 < n2) {
      const char x1 = text[i + 1];
      if (x1 == 's' || x1 == 'm') {
        --total;
      } else if (x1 != 't' && x1 != 'd' && i + 2 < n2) {
        const char x2 = text[i + 2];
        if ((x1 == 'r' && x2 == 'e') || (x1 == 'v' && x2 == 'e')) --total;
      }
    }
    text[total++] = x;
  }
  text.resize(total);
}

}  // namespace

Result<std::unique_ptr<Tokenizer>> Tokenizer::FromVocab(VocabSpec spec) {
  std::unique_ptr<Tokenizer> tok(new Tokenizer());
  GANNET_RETURN_IF_ERROR(tok->Init(std::move(spec)));
  return tok;
}

Status Tokenizer::Init(VocabSpec spec) {
  const size_t n = spec.tokens.size();
  if (n == 0) return Status::InvalidArgument("vocabulary has no tokens");
  if (n > static_cast<size_t>(INT32_MAX)) return Status::OutOfRange("vocabulary too large");
  if (!spec.scores.empty() && spec.scores.size() < n) {
    return Status::Corrupt("tokenizer has " + std::to_string(spec.scores.size()) + " scores for " +
                           std::to_string(n) + " tokens");
  }
  if (!spec.types.empty() && spec.types.size() < n) {
    return Status::Corrupt("tokenizer has " + std::to_string(spec.types.size()) +
                           " token types for " + std::to_string(n) + " tokens");
  }

  model_ = spec.model;
  pre_ = spec.pre;
  int32_t default_bos, default_eos, default_unk;
  if (model_ == VocabModel::kBpe) {
    const std::string pre_name = pre_.empty() ? "default" : pre_;
    const std::optional<PreTokenizerConfig> config = LookupPreTokenizer(pre_name);
    if (!config) {
      return Status::Unsupported(
          "BPE pre-tokenizer '" + pre_name +
          "' (tokenizer.ggml.pre) is not supported; gannet handles llama3/llama-bpe, "
          "qwen2, gpt-2, smollm, starcoder, refact and a few aliases");
    }
    pre_config_ = *config;
    add_space_prefix_ = false;
    clean_spaces_ = config->clean_spaces;
    add_bos_ = config->add_bos.value_or(false);
    add_eos_ = false;
    default_bos = default_eos = 11;
    default_unk = -1;
  } else {
    add_space_prefix_ = true;
    clean_spaces_ = false;
    add_bos_ = true;
    add_eos_ = false;
    default_bos = 1;
    default_eos = 2;
    default_unk = 0;
  }
  if (spec.add_space_prefix) add_space_prefix_ = *spec.add_space_prefix;
  if (spec.add_bos) add_bos_ = *spec.add_bos;
  if (spec.add_eos) add_eos_ = *spec.add_eos;

  tokens_ = std::move(spec.tokens);
  scores_ = spec.scores.empty() ? std::vector<float>(n, 0.0f) : std::move(spec.scores);
  scores_.resize(n);
  types_ =
      spec.types.empty() ? std::vector<TokenType>(n, TokenType::kNormal) : std::move(spec.types);
  types_.resize(n);
  attrs_.resize(n);
  token_to_id_.reserve(n);
  for (size_t i = 0; i < n; ++i) {
    if (tokens_[i].empty()) tokens_[i] = "[EMPTY_" + std::to_string(i) + "]";  // as llama.cpp
    if (!token_to_id_.emplace(tokens_[i], static_cast<int32_t>(i)).second) {
      return Status::Corrupt("token text of id " + std::to_string(i) + " repeats id " +
                             std::to_string(token_to_id_.at(tokens_[i])));
    }
    attrs_[i] = AttrFromType(types_[i]);
  }
  if (model_ == VocabModel::kBpe) {
    if (spec.merges.empty())
      return Status::NotFound("BPE vocabulary without merges (tokenizer.ggml.merges)");
    for (size_t i = 0; i < spec.merges.size(); ++i)
      ranks_.Add(spec.merges[i], static_cast<int32_t>(i));
  }

  // Special ids: defaults out of range are disabled; explicit ones must be in range.
  const auto resolve = [&](const char* name, const std::optional<int32_t>& given, int32_t dflt,
                           int32_t* out) -> Status {
    if (!given) {
      *out = dflt >= 0 && static_cast<size_t>(dflt) < n ? dflt : -1;
      return Status::Ok();
    }
    if (*given < -1 || *given >= static_cast<int64_t>(n)) {
      return Status::OutOfRange(std::string("special token id ") + name + " = " +
                                std::to_string(*given) + " is outside the vocabulary of " +
                                std::to_string(n));
    }
    *out = *given;
    return Status::Ok();
  };
  GANNET_RETURN_IF_ERROR(resolve("bos", spec.bos, default_bos, &bos_));
  GANNET_RETURN_IF_ERROR(resolve("eos", spec.eos, default_eos, &eos_));
  GANNET_RETURN_IF_ERROR(resolve("unknown", spec.unk, default_unk, &unk_));
  GANNET_RETURN_IF_ERROR(resolve("eot", spec.eot, -1, &eot_));
  GANNET_RETURN_IF_ERROR(resolve("eom", spec.eom, -1, &eom_));
  GANNET_RETURN_IF_ERROR(resolve("padding", spec.pad, -1, &pad_));
  GANNET_RETURN_IF_ERROR(resolve("fim_pre", spec.fim_pre, -1, &fim_pre_));
  GANNET_RETURN_IF_ERROR(resolve("fim_suf", spec.fim_suf, -1, &fim_suf_));
  GANNET_RETURN_IF_ERROR(resolve("fim_mid", spec.fim_mid, -1, &fim_mid_));
  GANNET_RETURN_IF_ERROR(resolve("fim_pad", spec.fim_pad, -1, &fim_pad_));
  GANNET_RETURN_IF_ERROR(resolve("fim_rep", spec.fim_rep, -1, &fim_rep_));
  GANNET_RETURN_IF_ERROR(resolve("fim_sep", spec.fim_sep, -1, &fim_sep_));

  byte_tokens_.fill(-1);
  if (model_ == VocabModel::kSpm) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    for (int b = 0; b < 256; ++b) {
      const char name[] = {'<', '0', 'x', kHex[b >> 4], kHex[b & 15], '>'};
      int32_t id = FindId(token_to_id_, std::string_view(name, sizeof(name)));
      if (id < 0) id = FindId(token_to_id_, std::string_view(reinterpret_cast<const char*>(&b), 1));
      byte_tokens_[b] = id;
    }
  }

  AdjustAttributes(spec.model_name);
  return Status::Ok();
}

std::optional<int32_t> Tokenizer::FindToken(std::string_view text) const {
  const int32_t id = FindId(token_to_id_, text);
  if (id < 0) return std::nullopt;
  return id;
}

bool Tokenizer::IsEndOfGeneration(int32_t id) const {
  return id >= 0 && std::binary_search(eog_ids_.begin(), eog_ids_.end(), id);
}

std::string Tokenizer::PieceFor(int32_t id) const {
  const uint32_t attr = attrs_[id];
  const std::string& text = tokens_[id];
  if (attr & (TokenAttr::kUnknown | TokenAttr::kControl | TokenAttr::kUserDefined)) return text;
  if (attr & TokenAttr::kNormal) {
    return model_ == VocabModel::kSpm ? ReplaceAll(text, kSpmSpace, " ") : ByteLevelDecode(text);
  }
  if (attr & TokenAttr::kByte) return std::string(1, static_cast<char>(ByteOfToken(text)));
  return "";  // unused and undefined tokens render as nothing
}

std::string Tokenizer::TokenToPiece(int32_t id, bool render_special) const {
  if (id < 0 || id >= n_vocab()) return "";
  if (!render_special && (attrs_[id] & (TokenAttr::kUnknown | TokenAttr::kControl))) return "";
  return pieces_[id];
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, bool render_special) const {
  return Decode(ids, DecodeOptions{.render_special = render_special});
}

std::string Tokenizer::Decode(std::span<const int32_t> ids, const DecodeOptions& options) const {
  std::string out;
  bool strip_space = add_space_prefix_;
  for (const int32_t id : ids) {
    std::string piece = TokenToPiece(id, options.render_special);
    if (strip_space && !piece.empty() && piece[0] == ' ') piece.erase(0, 1);
    strip_space = false;
    out += piece;
  }
  if (options.clean_spaces && clean_spaces_) CleanSpaces(&out);
  return out;
}

std::vector<Tokenizer::Fragment> Tokenizer::PartitionSpecial(std::string_view text,
                                                             bool parse_special) const {
  return partitioner_->Partition(text, parse_special);
}

std::vector<int32_t> Tokenizer::Encode(std::string_view text, bool add_special,
                                       bool parse_special) const {
  std::vector<int32_t> out;
  const std::vector<Fragment> fragments = PartitionSpecial(text, parse_special);
  if (add_special && add_bos_ && bos_ >= 0) out.push_back(bos_);

  if (model_ == VocabModel::kSpm) {
    const SpmVocabView vocab{&token_to_id_, scores_, &byte_tokens_, unk_};
    bool prev_special = true;  // the first fragment gets the space prefix too
    std::string buf;
    for (const Fragment& f : fragments) {
      if (f.token >= 0) {
        out.push_back(f.token);
        prev_special = true;
        continue;
      }
      buf.clear();
      if (add_space_prefix_ && prev_special) buf.push_back(' ');
      buf.append(text.substr(f.offset, f.length));
      SpmEncode(vocab, ReplaceAll(buf, " ", kSpmSpace), &out);
      prev_special = false;
    }
  } else {
    const BpeVocabView vocab{&token_to_id_, &ranks_, pre_config_.ignore_merges};
    for (const Fragment& f : fragments) {
      if (f.token >= 0) {
        out.push_back(f.token);
        continue;
      }
      for (const std::string& word :
           PreTokenize(pre_config_.kind, text.substr(f.offset, f.length))) {
        BpeEncodeWord(vocab, ByteLevelEncode(word), &out);
      }
    }
  }

  if (add_special && add_eos_ && eos_ >= 0) out.push_back(eos_);
  return out;
}

}  // namespace gannet
