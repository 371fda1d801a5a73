// libFuzzer target: model output read by the tool-call parser (chat/tool_call_parser.h). The
// model writes what it likes, so every byte string must parse. The first input byte picks the
// format (generic, Hermes, Llama 3, Mistral) and stream_arguments; the second seeds how the rest
// is cut into pieces, as tokens arrive. Checks: the streamed deltas put together equal one Feed of
// the whole text (the parser's contract) and calls have names. (Whether released arguments are
// JSON is not checked here: the parser's scanner follows RFC 8259's grammar, which allows what
// nlohmann refuses, lone-surrogate escapes and numbers past double's range; the unit tests check
// arguments on well-formed calls.)
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "chat/tool_call_parser.h"
#include "chat/tool_calls.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

bool Equal(const gannet::ParsedToolOutput& a, const gannet::ParsedToolOutput& b) {
  if (a.content != b.content || a.calls.size() != b.calls.size()) return false;
  for (size_t i = 0; i < a.calls.size(); ++i) {
    if (a.calls[i].name != b.calls[i].name || a.calls[i].arguments != b.calls[i].arguments) {
      return false;
    }
  }
  return true;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  static const gannet::ToolCallFormat kFormats[] = {
      gannet::ToolCallFormat::kGeneric, gannet::ToolCallFormat::kHermes,
      gannet::ToolCallFormat::kLlama3, gannet::ToolCallFormat::kMistral};
  const gannet::ToolCallFormat format = kFormats[data[0] % 4];
  const gannet::ToolCallParserOptions options{.stream_arguments = (data[0] & 4) != 0};
  uint32_t cut = data[1] | 1u;  // a small LCG gives the piece lengths (1..8 bytes)
  const std::string_view text(reinterpret_cast<const char*>(data) + 2, size - 2);

  const gannet::ParsedToolOutput whole = gannet::ParseToolOutput(format, text, options);
  gannet::ToolCallParser parser(format, options);
  std::vector<gannet::ToolCallDelta> deltas;
  for (size_t pos = 0; pos < text.size();) {
    cut = cut * 1103515245u + 12345u;
    const size_t n = 1 + (cut >> 16) % 8;
    parser.Feed(text.substr(pos, n), &deltas);
    pos += n;
  }
  parser.Finish(&deltas);
  gannet::ParsedToolOutput streamed;
  gannet::ApplyToolCallDeltas(deltas, &streamed);
  Check(Equal(whole, streamed));
  Check(parser.calls() == static_cast<int32_t>(whole.calls.size()));
  for (const gannet::ParsedToolCall& c : whole.calls) {
    Check(!c.name.empty());
  }
  return 0;
}
