// One choice's generated text as OpenAI's tool-call answer: the model family's parser
// (chat/tool_call_parser.h) turns text into content and calls; this gives the calls their ids and
// writes them as chat.completion message fields (whole) or chat.completion.chunk deltas (streamed:
// the first piece of a call carries index, id, type and name, later pieces argument fragments).
// The streamed pieces put together equal the whole answer.
//
// Thread-safety: none; one per choice (the service's callbacks hold the request's lock).
#pragma once

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "chat/tool_call_parser.h"
#include "server/openai_format.h"

namespace gannet::server {

class ChoiceToolOutput {
 public:
  // stream_arguments: the output follows the tool grammar (chat/tool_calls.h
  // ToolOutputConstrained), so arguments may stream before their call is complete.
  ChoiceToolOutput(ToolCallFormat format, bool stream_arguments);

  // Streamed: the chunks of choice `index` that `text` decides, in order (content and call
  // pieces in separate chunks). `last`: the choice ended; whatever is held is decided.
  std::vector<ChunkDelta> Stream(int32_t index, std::string_view text, bool last);
  // Whole: the message fields of the choice's complete text into `out` (text, content_null,
  // tool_calls).
  void Whole(std::string_view text, ChoiceResult* out);
  // The choice called a tool (decides finish_reason "tool_calls").
  bool called() const { return !ids_.empty(); }

 private:
  const std::string& IdOf(int32_t call);

  ToolCallFormat format_;
  ToolCallParser parser_;
  std::vector<std::string> ids_;
};

// The finish_reason of a choice that ended with `engine_reason` ("stop" / "length").
const char* ToolFinishReason(const char* engine_reason, bool called);

}  // namespace gannet::server
