#include "server/tool_output.h"

#include <cstring>

namespace gannet::server {

ChoiceToolOutput::ChoiceToolOutput(ToolCallFormat format, bool stream_arguments)
    : format_(format), parser_(format, {.stream_arguments = stream_arguments}) {}

const std::string& ChoiceToolOutput::IdOf(int32_t call) {
  while (ids_.size() <= static_cast<size_t>(call)) ids_.push_back(NewToolCallId(format_));
  return ids_[static_cast<size_t>(call)];
}

std::vector<ChunkDelta> ChoiceToolOutput::Stream(int32_t index, std::string_view text, bool last) {
  std::vector<ToolCallDelta> deltas;
  if (!text.empty()) parser_.Feed(text, &deltas);
  if (last) parser_.Finish(&deltas);
  std::vector<ChunkDelta> chunks;
  for (ToolCallDelta& d : deltas) {
    if (d.kind == ToolCallDelta::Kind::kContent) {
      chunks.push_back(ChunkDelta{.index = index, .text = std::move(d.text)});
      continue;
    }
    // A call's start and the arguments right after it go out in one piece.
    if (d.kind == ToolCallDelta::Kind::kArguments && !chunks.empty() &&
        chunks.back().tool_calls.size() == 1 && chunks.back().tool_calls[0].index == d.index) {
      chunks.back().tool_calls[0].arguments += d.text;
      continue;
    }
    ToolCallChunk piece{.index = d.index};
    if (d.kind == ToolCallDelta::Kind::kCallStart) {
      piece.id = IdOf(d.index);
      piece.name = std::move(d.text);
    } else {
      piece.arguments = std::move(d.text);
    }
    ChunkDelta chunk{.index = index};
    chunk.tool_calls.push_back(std::move(piece));
    chunks.push_back(std::move(chunk));
  }
  return chunks;
}

void ChoiceToolOutput::Whole(std::string_view text, ChoiceResult* out) {
  std::vector<ToolCallDelta> deltas;
  parser_.Feed(text, &deltas);
  parser_.Finish(&deltas);
  ParsedToolOutput parsed;
  ApplyToolCallDeltas(deltas, &parsed);
  out->text = std::move(parsed.content);
  out->tool_calls.clear();
  for (size_t i = 0; i < parsed.calls.size(); ++i) {
    out->tool_calls.push_back(ToolCallResult{.id = IdOf(static_cast<int32_t>(i)),
                                             .name = std::move(parsed.calls[i].name),
                                             .arguments = std::move(parsed.calls[i].arguments)});
  }
  out->content_null = !out->tool_calls.empty() && out->text.empty();
}

const char* ToolFinishReason(const char* engine_reason, bool called) {
  return called && std::strcmp(engine_reason, "stop") == 0 ? "tool_calls" : engine_reason;
}

}  // namespace gannet::server
