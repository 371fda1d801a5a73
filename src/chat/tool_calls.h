// Tool calling (OpenAI's `tools` / `tool_choice`) per model family: which format a model writes
// its calls in (detected from its chat template), how the request's tools reach the prompt, and
// the grammar that makes a required call valid by construction. The output side (the calls parsed
// back out of the text, whole or streamed) is chat/tool_call_parser.h.
//
// Formats (ToolCallFormat), each recognised by text its template writes:
//   kHermes   `<tool_call>`: Hermes 2 Pro, Qwen 2.5 / QwQ / Qwen 3. A call is
//             <tool_call>\n{"name": ..., "arguments": {...}}\n</tool_call>, one block per call.
//   kLlama3   `<|start_header_id|>` with `"parameters"`: Llama 3.1 / 3.2 / 3.3. A call is the
//             whole message {"name": ..., "parameters": {...}} (after an optional <|python_tag|>);
//             several are separated by ';' or blanks.
//   kMistral  `[TOOL_CALLS]`: Mistral Nemo / Small. [TOOL_CALLS][{"name": ..., "arguments":
//             {...}}, ...]; Mistral Small 3.2's [TOOL_CALLS]name[ARGS]{...} is read too when the
//             markers are in the text.
//   kGeneric  every other template (and the ChatML fallback): the tools are described in a system
//             message and the output is constrained to one JSON object, {"tool_calls": [{"name":
//             ..., "arguments": {...}}]} or {"response": "..."}.
// Markers that are control tokens of the model's vocabulary ([TOOL_CALLS], [ARGS], [CALL_ID],
// <|python_tag|>; ToolMarkerTokens) are dropped by the detokenizer unless asked for: the server
// asks the engine to render them (GenerationRequest::render_tokens), so the parser sees them, and
// the grammars name them by id (<[id]>, grammar/gbnf.h), so a constrained call carries the marker
// token itself, never its text spelled out. The parser also takes a call at the very start of the
// output without a marker.
//
// tool_choice auto in a native format is a lazy grammar (grammar/trigger.h): the model writes
// freely until it starts a call (the format's marker, or for Llama 3 a JSON object beginning
// {"name" at the start of the output); from there the grammar of the calls (the one `required`
// uses) holds the rest, so the arguments follow the schema.
//
// Thread-safety: pure functions of their arguments.
#pragma once

#include <cstdint>
#include <nlohmann/json.hpp>
#include <string>
#include <string_view>
#include <vector>

#include "base/status.h"
#include "chat/template.h"
#include "grammar/trigger.h"
#include "tokenizer/tokenizer.h"

namespace gannet {

enum class ToolCallFormat { kGeneric, kHermes, kLlama3, kMistral };

const char* ToolCallFormatName(ToolCallFormat format);

// The format a template's model writes calls in (see above); kGeneric for the fallback and for
// templates with no tool support.
ToolCallFormat DetectToolCallFormat(const ChatTemplate& tmpl);
ToolCallFormat DetectToolCallFormat(std::string_view template_source);

// One function the model may call.
struct ToolDefinition {
  std::string name;
  std::string description;            // may be empty
  nlohmann::ordered_json parameters;  // a JSON Schema object ({} when the request had none)
  nlohmann::ordered_json raw;         // the request's {"type": "function", "function": ...}
};

enum class ToolChoiceMode {
  kNone,      // no call: the tools are not shown to the model, the output is plain text
  kAuto,      // the model decides
  kRequired,  // at least one call (grammar-constrained)
  kNamed,     // exactly the function `ToolChoice::name` (grammar-constrained)
};

struct ToolSpec {
  std::vector<ToolDefinition> tools;  // non-empty
  ToolChoiceMode choice = ToolChoiceMode::kAuto;
  std::string named;     // kNamed: the function (one of `tools`)
  bool parallel = true;  // parallel_tool_calls: more than one call per answer
};

// The texts of a format's call markers: Hermes <tool_call> </tool_call>; Llama 3 <|python_tag|>;
// Mistral [TOOL_CALLS] [ARGS] [CALL_ID]; generic none.
std::vector<std::string_view> ToolCallMarkers(ToolCallFormat format);

// The markers of a format that are control tokens of a vocabulary (a token with the marker's text
// that the detokenizer drops; end-of-generation tokens never count).
struct ToolMarkerTokens {
  std::vector<std::pair<std::string, int32_t>> tokens;  // marker text -> token id
  int32_t Find(std::string_view marker) const;          // -1: the marker is text (or absent)
  std::vector<int32_t> ids() const;
};
ToolMarkerTokens FindToolMarkerTokens(ToolCallFormat format, const Tokenizer& tok);

// Whether the output of `spec` in `format` is grammar-constrained: required and named calls
// always, auto only in the generic format (there the answer is JSON either way).
bool ToolOutputConstrained(ToolCallFormat format, const ToolSpec& spec);

// Whether the output is free until a call starts, then constrained (auto in a native format).
bool ToolOutputLazy(ToolCallFormat format, const ToolSpec& spec);

// The GBNF grammar of the outputs `spec` allows in `format`, or "" when the output is free
// (tool_choice none; auto in a native format: see ToolCallLazyGbnf). Arguments follow each
// function's JSON Schema (grammar/json_schema.h), names are exactly the tools' names; with
// `parallel` false exactly one call. Markers in `markers` are written as token references, others
// as text: Hermes <tool_call>\n{...}\n</tool_call>; Llama 3 {...}, after an optional
// <|python_tag|> where that is a control token; Mistral [TOOL_CALLS][{...}, ...]. Errors: a
// schema the converter refuses (naming the keyword) or a grammar over the converter's limits.
Result<std::string> ToolCallGbnf(ToolCallFormat format, const ToolSpec& spec,
                                 const ToolMarkerTokens& markers = {});

// A lazy output (ToolOutputLazy): the grammar that holds from the trigger on (the calls as
// `required` writes them), and the triggers: the call marker (as a token when it is a control
// token, else as a word) and, for Llama 3, {"name" at the start of the output.
Result<std::string> ToolCallLazyGbnf(ToolCallFormat format, const ToolSpec& spec,
                                     const ToolMarkerTokens& markers);
grammar::GrammarTriggers ToolCallTriggers(ToolCallFormat format, const ToolMarkerTokens& markers);

// Sets up the template input for `spec` in `format`. Native formats: `tools` = the tools as the
// request sent them (tool_choice none: not given). Generic: no `tools` variable; a system message
// describing the tools and the JSON answer expected is put first (merged into a leading system
// message), earlier assistant tool calls are written as the JSON the model answers with, and tool
// results become user messages naming their call. Also NormalizeToolCallHistory.
// `placement` kFirstUserMessage puts the generic description at the start of the first user
// message instead, for templates that refuse a system role (Gemma 2 raises on one).
enum class ToolPromptPlacement { kSystemMessage, kFirstUserMessage };
void PrepareToolPrompt(ToolCallFormat format, const ToolSpec* spec, ChatRenderInput* input,
                       ToolPromptPlacement placement = ToolPromptPlacement::kSystemMessage);

// History from clients carries function.arguments as JSON text (OpenAI's shape); templates print
// it with `tojson` or iterate it as a mapping, so text that parses as a JSON object becomes that
// object (llama.cpp does the same for templates that need objects). Other text is left as it is.
void NormalizeToolCallHistory(std::vector<ChatMessage>* messages);

// A new call id: "call_" + 24 alphanumerics; Mistral's templates require exactly 9 alphanumerics.
std::string NewToolCallId(ToolCallFormat format);

}  // namespace gannet
