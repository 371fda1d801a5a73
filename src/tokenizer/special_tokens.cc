// llama.cpp's load-time rules for special tokens (llama_vocab::impl::load): which tokens end
// generation, which become control tokens because of their text, the order in which special token
// texts are matched, and per-model strip attributes. They decide how text is split before
// tokenization, so they are reproduced exactly.
#include <algorithm>
#include <cctype>
#include <span>
#include <string_view>

#include "tokenizer/tokenizer.h"

namespace gannet {

namespace {

using TextList = std::span<const std::string_view>;

constexpr std::string_view kEotTexts[] = {"<|eot_id|>",
                                          "<|im_end|>",
                                          "<|end|>",
                                          "<end_of_turn>",
                                          "<|endoftext|>",
                                          "<|end_of_text|>",
                                          "<EOT>",
                                          "_<EOT>",
                                          "[EOT]",
                                          "<\xEF\xBD\x9C"
                                          "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
                                          "<end_of_utterance>"};
constexpr std::string_view kEomTexts[] = {"<|eom_id|>"};
constexpr std::string_view kFimPreTexts[] = {"<|fim_prefix|>",
                                             "<fim-prefix>",
                                             "<fim_prefix>",
                                             "<\xEF\xBD\x9C"
                                             "fim\xE2\x96\x81"
                                             "begin\xEF\xBD\x9C>",
                                             "<PRE>",
                                             "\xE2\x96\x81<PRE>",
                                             "<|code_prefix|>",
                                             "<|prefix|>"};
constexpr std::string_view kFimSufTexts[] = {"<|fim_suffix|>",
                                             "<fim-suffix>",
                                             "<fim_suffix>",
                                             "<\xEF\xBD\x9C"
                                             "fim\xE2\x96\x81hole\xEF\xBD\x9C>",
                                             "<SUF>",
                                             "\xE2\x96\x81<SUF>",
                                             "<|code_suffix|>",
                                             "<|suffix|>"};
constexpr std::string_view kFimMidTexts[] = {"<|fim_middle|>",
                                             "<fim-middle>",
                                             "<fim_middle>",
                                             "<\xEF\xBD\x9C"
                                             "fim\xE2\x96\x81"
                                             "end\xEF\xBD\x9C>",
                                             "<MID>",
                                             "\xE2\x96\x81<MID>",
                                             "<|code_middle|>",
                                             "<|middle|>"};
constexpr std::string_view kFimPadTexts[] = {"<|fim_pad|>", "<fim-pad>", "<fim_pad>", "<PAD>",
                                             "[PAD]"};
constexpr std::string_view kFimRepTexts[] = {"<|fim_repo|>", "<|repo_name|>", "<fim-repo>",
                                             "<REPO>", "<reponame>"};
constexpr std::string_view kFimSepTexts[] = {"<|file_sep|>"};
constexpr std::string_view kEogTexts[] = {"<|eot_id|>",
                                          "<|im_end|>",
                                          "<|end|>",
                                          "<|return|>",
                                          "<|call|>",
                                          "<|flush|>",
                                          "<|calls|>",
                                          "<end_of_turn>",
                                          "<|endoftext|>",
                                          "</s>",
                                          "<|eom_id|>",
                                          "<EOT>",
                                          "_<EOT>",
                                          "[EOT]",
                                          "[EOS]",
                                          "<|end_of_text|>",
                                          "<end_of_utterance>",
                                          "<eos>",
                                          "<turn|>",
                                          "<|tool_response>",
                                          "<\xEF\xBD\x9C"
                                          "end\xE2\x96\x81of\xE2\x96\x81sentence\xEF\xBD\x9C>",
                                          "[e~["};
constexpr std::string_view kAlwaysUserDefined[] = {"<|channel|>", "<|message|>", "<|start|>",
                                                   "<|constrain|>"};

bool Contains(TextList list, std::string_view s) {
  return std::find(list.begin(), list.end(), s) != list.end();
}

}  // namespace

void Tokenizer::AdjustAttributes(const std::string& model_name) {
  const int32_t n = n_vocab();
  // Markers recognised by text when the file names none. llama.cpp takes the first one met while
  // walking a hash map; gannet takes the lowest id (they differ only where a vocabulary holds
  // several candidates for one role).
  const auto detect = [&](TextList texts, int32_t* id) {
    if (*id >= 0) return;
    for (int32_t i = 0; i < n; ++i) {
      if (Contains(texts, tokens_[i])) {
        *id = i;
        attrs_[i] |= TokenAttr::kControl;
        return;
      }
    }
  };
  detect(kEotTexts, &eot_);
  detect(kEomTexts, &eom_);
  detect(kFimPreTexts, &fim_pre_);
  detect(kFimSufTexts, &fim_suf_);
  detect(kFimMidTexts, &fim_mid_);
  detect(kFimPadTexts, &fim_pad_);
  detect(kFimRepTexts, &fim_rep_);
  detect(kFimSepTexts, &fim_sep_);

  for (int32_t i = 0; i < n; ++i) {
    if ((attrs_[i] & TokenAttr::kControl) && tokens_[i].find("unused") != std::string::npos) {
      attrs_[i] |= TokenAttr::kUnused;
    }
  }

  std::vector<int32_t> eog;
  for (const int32_t id : {fim_pad_, fim_rep_, fim_sep_}) {
    if (id >= 0) eog.push_back(id);
  }
  for (int32_t i = 0; i < n; ++i) {
    if (Contains(kEogTexts, tokens_[i])) {
      eog.push_back(i);
      attrs_[i] |= TokenAttr::kControl;
    }
    if (Contains(kAlwaysUserDefined, tokens_[i])) attrs_[i] = TokenAttr::kUserDefined;  // gpt-oss
  }
  for (const int32_t id : {eos_, eot_, eom_}) {
    if (id >= 0) eog.push_back(id);
  }
  std::sort(eog.begin(), eog.end());
  eog.erase(std::unique(eog.begin(), eog.end()), eog.end());
  // o200k_harmony / solar-open: <|end|> separates messages there, it does not end generation.
  const auto has = [&](std::string_view text) {
    return std::any_of(eog.begin(), eog.end(), [&](int32_t id) { return tokens_[id] == text; });
  };
  const auto drop = [&](std::string_view text, uint32_t new_attr) {
    for (auto it = eog.begin(); it != eog.end(); ++it) {
      if (tokens_[*it] == text) {
        attrs_[*it] = new_attr;
        eog.erase(it);
        return;
      }
    }
  };
  const bool has_call = has("<|call|>") || has("<|calls|>");
  if (has("<|end|>") && ((has("<|return|>") && has_call) || (has_call && has("<|flush|>")))) {
    drop("<|end|>", TokenAttr::kUserDefined);
  }
  if (has("</s>") && (has("<|tool_response>") || has("<|plamo:eos|>")))
    drop("</s>", TokenAttr::kNormal);
  eog_ids_ = std::move(eog);

  // Special token texts are matched longest first. std::sort (not stable) over ascending ids, as
  // llama.cpp, so that equal-length texts keep the same relative order with the same library.
  special_tokens_.clear();
  for (int32_t i = 0; i < n; ++i) {
    if (attrs_[i] & (TokenAttr::kControl | TokenAttr::kUserDefined | TokenAttr::kUnknown)) {
      special_tokens_.push_back(i);
    }
  }
  std::sort(special_tokens_.begin(), special_tokens_.end(),
            [&](int32_t a, int32_t b) { return tokens_[a].size() > tokens_[b].size(); });

  pieces_.resize(n);
  for (int32_t i = 0; i < n; ++i) pieces_[i] = PieceFor(i);

  // Per-model strip attributes (after the piece cache, as in llama.cpp).
  std::string name = model_name;
  std::transform(name.begin(), name.end(), name.begin(),
                 [](unsigned char c) { return std::tolower(c); });
  if (name.find("phi-3") != std::string::npos || name.find("phi3") != std::string::npos) {
    for (const int32_t id : special_tokens_) attrs_[id] |= TokenAttr::kRstrip;
    if (const auto id = FindToken("</s>")) attrs_[*id] |= TokenAttr::kRstrip;
    for (const std::string_view t : {"<unk>", "<s>", "<|endoftext|>"}) {
      if (const auto id = FindToken(t)) attrs_[*id] &= ~TokenAttr::kRstrip;
    }
  }

  std::vector<SpecialPartitioner::Special> specials;
  specials.reserve(special_tokens_.size());
  for (const int32_t id : special_tokens_) {
    const uint32_t attr = attrs_[id];
    specials.push_back({.id = id,
                        .text = tokens_[id],
                        .parse_only = (attr & (TokenAttr::kControl | TokenAttr::kUnknown)) != 0,
                        .lstrip = (attr & TokenAttr::kLstrip) != 0,
                        .rstrip = (attr & TokenAttr::kRstrip) != 0});
  }
  partitioner_ = std::make_unique<const SpecialPartitioner>(std::move(specials));
}

}  // namespace gannet
