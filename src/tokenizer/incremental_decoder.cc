#include <algorithm>

#include "tokenizer/tokenizer.h"
#include "tokenizer/unicode.h"

namespace gannet {

namespace {
constexpr std::string_view kReplacement = "\xEF\xBF\xBD";
}  // namespace

IncrementalDecoder::IncrementalDecoder(const Tokenizer& tokenizer, bool render_special,
                                       std::vector<int32_t> render_ids)
    : tokenizer_(tokenizer), render_special_(render_special), render_ids_(std::move(render_ids)) {
  std::sort(render_ids_.begin(), render_ids_.end());
}

std::string IncrementalDecoder::Feed(int32_t id) {
  const bool render =
      render_special_ || std::binary_search(render_ids_.begin(), render_ids_.end(), id);
  std::string piece = tokenizer_.TokenToPiece(id, render);
  // Decode's first-token rule: one leading space goes where the vocabulary adds a space prefix.
  if (first_ && tokenizer_.add_space_prefix() && !piece.empty() && piece[0] == ' ')
    piece.erase(0, 1);
  first_ = false;
  pending_ += piece;
  return TakeComplete(/*final=*/false);
}

std::string IncrementalDecoder::Finish() {
  std::string out = TakeComplete(/*final=*/true);
  first_ = true;
  return out;
}

std::string IncrementalDecoder::TakeComplete(bool final) {
  std::string out;
  std::string_view rest = pending_;
  while (!rest.empty()) {
    const size_t valid = unicode::ValidUtf8Prefix(rest);
    out.append(rest.substr(0, valid));
    rest.remove_prefix(valid);
    if (rest.empty()) break;
    // Hold a sequence that may still complete; anything else can never become valid.
    if (!final && unicode::IsIncompleteUtf8Tail(rest)) break;
    out.append(kReplacement);
    rest.remove_prefix(unicode::InvalidSequenceLength(rest));
  }
  pending_ = std::string(rest);
  return out;
}

}  // namespace gannet
