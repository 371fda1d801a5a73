// ToolCallParser: a model's output text -> the plain content and the tool calls in it, by the
// model family's format (chat/tool_calls.h), incrementally: text goes in as it is generated and
// comes out as OpenAI's streamed pieces (content, a call's start with its name, argument
// fragments), never as raw markup.
//
// Decisions depend only on the bytes, never on how they were split, so the deltas of a stream
// put together give exactly what one Feed of the whole text gives (the non-streamed answer).
//   - Content is held while it may still be the start of a call marker (`<tool_call>`,
//     `[TOOL_CALLS]`, `<|python_tag|>`, or, where the format allows it, a JSON call at the very
//     start of the output), as stop strings are; blanks next to calls are dropped, as are blanks
//     ending the output.
//   - A call's JSON is checked byte by byte (chat/json_scanner.h). Without `stream_arguments` a
//     call is released only once its JSON is complete and it has a string "name" and an object
//     "arguments" / "parameters" (or JSON text of one); anything malformed is given back as
//     content, marker included. With `stream_arguments` (the output follows the tool grammar, so
//     it cannot be malformed) a call starts as soon as its name is complete and its arguments
//     stream as they are generated.
//   - Arguments are the JSON text exactly as the model wrote it (an arguments string: its value).
//
// Thread-safety: none; one per sample.
#pragma once

#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "chat/json_scanner.h"
#include "chat/tool_calls.h"

namespace gannet {

struct ToolCallDelta {
  enum class Kind { kContent, kCallStart, kArguments };
  Kind kind = Kind::kContent;
  int32_t index = 0;  // calls: the call's position in the answer
  std::string text;   // content, the function name (kCallStart) or argument bytes
};

struct ToolCallParserOptions {
  bool stream_arguments = false;  // see above
};

// The answer put together from deltas.
struct ParsedToolCall {
  std::string name;
  std::string arguments;  // JSON text
};
struct ParsedToolOutput {
  std::string content;
  std::vector<ParsedToolCall> calls;
};

class ToolCallParser {
 public:
  explicit ToolCallParser(ToolCallFormat format, ToolCallParserOptions options = {});

  // Appends the deltas `text` decides.
  void Feed(std::string_view text, std::vector<ToolCallDelta>* out);
  // The end of the output: whatever is still held is decided (an unfinished call without
  // stream_arguments is content).
  void Finish(std::vector<ToolCallDelta>* out);
  int32_t calls() const { return n_calls_; }

 private:
  enum class Mode { kContent, kAfterMarker, kMistralName, kRegion, kAfterCall };
  struct Call {
    bool has_name = false, started = false, bad = false;
    std::string name;
    size_t name_start = 0;
    char args_first = 0;  // 0: no arguments seen
    size_t args_start = 0, args_end = 0, args_sent = 0;
    bool args_done = false;
    // "arguments"/"parameters" members seen: the first one is the call's arguments; a repeated
    // one is ignored (what streamed of the first cannot be taken back, and a split must not
    // change the answer).
    int32_t args_members = 0;
    int32_t index = -1;
  };

  void Run();
  bool ContentStep();
  bool AfterMarkerStep();
  bool MistralNameStep();
  bool NotACall();  // the marker and what followed it are content after all
  bool AfterCallStep();
  void RegionStep();
  void StartRegion();
  void OnEvent(const JsonScanner::Event& e);
  void OnGenericTop(const JsonScanner::Event& e);
  void OnCallEvent(const JsonScanner::Event& e, Call& call);
  void EndCall(Call& call);
  void StreamPending(size_t limit);
  void EndRegion(size_t resume);
  void Emit(ToolCallDelta d);
  void EmitContent(std::string_view text);
  void StartCall(Call& call);

  ToolCallFormat format_;
  ToolCallParserOptions options_;
  std::string text_;  // everything fed
  size_t pos_ = 0;    // next byte to decide
  Mode mode_ = Mode::kContent;
  std::string held_blanks_;
  bool only_calls_ = true;  // nothing but blanks and calls so far
  int32_t n_calls_ = 0;
  std::vector<ToolCallDelta>* out_ = nullptr;

  // The call region being read (from its marker or first byte).
  size_t region_start_ = 0;
  std::unique_ptr<JsonScanner> scanner_;
  int call_depth_ = 0;  // depth of call objects in the region's JSON
  bool region_bad_ = false, region_sent_ = false;
  int32_t region_first_index_ = 0;
  std::vector<ToolCallDelta> region_held_;  // without stream_arguments: released at its end
  std::vector<Call> calls_;
  std::string preset_name_;        // [TOOL_CALLS]name[ARGS]{...}: the region is the arguments
  bool skipping_call_id_ = false;  // inside [CALL_ID]id, before [ARGS]
  size_t response_sent_ = 0;       // generic {"response": "..."}: the next byte to decode
  bool in_response_ = false, saw_response_ = false;
};

// The whole text at once.
ParsedToolOutput ParseToolOutput(ToolCallFormat format, std::string_view text,
                                 ToolCallParserOptions options = {});
// Puts deltas together, as a client does with a stream.
void ApplyToolCallDeltas(const std::vector<ToolCallDelta>& deltas, ParsedToolOutput* out);

// JSON string contents (between the quotes) -> UTF-8 appended to `out`, as far as whole escapes
// go; returns how many bytes of `raw` were decoded. Unless `final`, a trailing incomplete escape
// (or a high surrogate whose low half may still come) is left; lone surrogates become U+FFFD.
size_t DecodeJsonStringPrefix(std::string_view raw, bool final, std::string* out);

}  // namespace gannet
