// ToolCallParser: content and tool calls out of generated text, byte by byte.
#include "chat/tool_call_parser.h"

#include <nlohmann/json.hpp>

#include "base/utf8.h"

namespace gannet {
namespace {

constexpr std::string_view kHermesOpen = "<tool_call>";
constexpr std::string_view kHermesClose = "</tool_call>";
constexpr std::string_view kPythonTag = "<|python_tag|>";
constexpr std::string_view kMistralCalls = "[TOOL_CALLS]";
constexpr std::string_view kMistralArgs = "[ARGS]";
constexpr std::string_view kMistralCallId = "[CALL_ID]";

bool IsBlank(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r'; }
bool IsNameChar(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_' ||
         c == '-' || c == '.';
}

// `rest` is a proper prefix of `marker`: more text may complete it.
bool MayBecome(std::string_view rest, std::string_view marker) {
  return rest.size() < marker.size() && marker.substr(0, rest.size()) == rest;
}

std::string_view Marker(ToolCallFormat f) {
  switch (f) {
    case ToolCallFormat::kHermes:
      return kHermesOpen;
    case ToolCallFormat::kLlama3:
      return kPythonTag;
    case ToolCallFormat::kMistral:
      return kMistralCalls;
    case ToolCallFormat::kGeneric:
      break;
  }
  return {};
}

// The byte that opens a call region with no marker before it, at the start of the output.
char BareOpen(ToolCallFormat f) {
  switch (f) {
    case ToolCallFormat::kLlama3:
    case ToolCallFormat::kGeneric:
      return '{';
    case ToolCallFormat::kMistral:
      return '[';
    case ToolCallFormat::kHermes:
      break;
  }
  return 0;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

int Hex4(std::string_view s) {
  int v = 0;
  for (size_t i = 0; i < 4; ++i) {
    const int h = HexValue(s[i]);
    if (h < 0) return -1;
    v = v * 16 + h;
  }
  return v;
}

char SimpleEscape(char e) {
  switch (e) {
    case 'b':
      return '\b';
    case 'f':
      return '\f';
    case 'n':
      return '\n';
    case 'r':
      return '\r';
    case 't':
      return '\t';
    default:
      return e;  // " \ /
  }
}

}  // namespace

size_t DecodeJsonStringPrefix(std::string_view raw, bool final, std::string* out) {
  size_t i = 0;
  while (i < raw.size()) {
    if (raw[i] != '\\') {
      out->push_back(raw[i++]);
      continue;
    }
    if (i + 1 >= raw.size()) break;
    if (raw[i + 1] != 'u') {
      out->push_back(SimpleEscape(raw[i + 1]));
      i += 2;
      continue;
    }
    if (i + 6 > raw.size()) break;
    int cp = Hex4(raw.substr(i + 2));
    size_t used = 6;
    if (cp >= 0xD800 && cp <= 0xDBFF) {
      if (i + 12 > raw.size() && !final) break;
      const bool pair = i + 12 <= raw.size() && raw[i + 6] == '\\' && raw[i + 7] == 'u';
      const int low = pair ? Hex4(raw.substr(i + 8)) : -1;
      if (low >= 0xDC00 && low <= 0xDFFF) {
        cp = 0x10000 + ((cp - 0xD800) << 10) + (low - 0xDC00);
        used = 12;
      } else {
        cp = 0xFFFD;
      }
    } else if (cp < 0 || (cp >= 0xDC00 && cp <= 0xDFFF)) {
      cp = 0xFFFD;
    }
    unicode::AppendUtf8(static_cast<uint32_t>(cp), out);
    i += used;
  }
  return i;
}

ToolCallParser::ToolCallParser(ToolCallFormat format, ToolCallParserOptions options)
    : format_(format), options_(options) {}

void ToolCallParser::Feed(std::string_view text, std::vector<ToolCallDelta>* out) {
  out_ = out;
  text_.append(text);
  Run();
  out_ = nullptr;
}

void ToolCallParser::Run() {
  while (pos_ < text_.size()) {
    bool progressed = true;
    switch (mode_) {
      case Mode::kContent:
        progressed = ContentStep();
        break;
      case Mode::kAfterMarker:
        progressed = AfterMarkerStep();
        break;
      case Mode::kMistralName:
        progressed = MistralNameStep();
        break;
      case Mode::kAfterCall:
        progressed = AfterCallStep();
        break;
      case Mode::kRegion:
        RegionStep();
        break;
    }
    if (!progressed) break;
  }
  if (mode_ == Mode::kRegion) StreamPending(pos_);
}

void ToolCallParser::Emit(ToolCallDelta d) {
  const bool in_region = mode_ == Mode::kRegion;
  std::vector<ToolCallDelta>* to = in_region && !options_.stream_arguments ? &region_held_ : out_;
  if (in_region && to == out_) region_sent_ = true;
  if (d.kind == ToolCallDelta::Kind::kContent) {
    if (d.text.empty()) return;
    if (!to->empty() && to->back().kind == ToolCallDelta::Kind::kContent) {
      to->back().text += d.text;
      return;
    }
  }
  to->push_back(std::move(d));
}

void ToolCallParser::EmitContent(std::string_view text) {
  Emit({.kind = ToolCallDelta::Kind::kContent, .text = std::string(text)});
}

bool ToolCallParser::ContentStep() {
  const std::string_view rest = std::string_view(text_).substr(pos_);
  const std::string_view marker = Marker(format_);
  if (!marker.empty()) {
    if (rest.substr(0, marker.size()) == marker) {
      held_blanks_.clear();
      region_start_ = pos_;
      pos_ += marker.size();
      mode_ = Mode::kAfterMarker;
      return true;
    }
    if (MayBecome(rest, marker)) return false;
  }
  const char c = rest[0];
  if (only_calls_ && c == BareOpen(format_)) {
    held_blanks_.clear();
    region_start_ = pos_;
    StartRegion();
    return true;
  }
  ++pos_;
  if (only_calls_ && format_ == ToolCallFormat::kLlama3 && n_calls_ > 0 && c == ';') return true;
  if (IsBlank(c)) {
    held_blanks_.push_back(c);
    return true;
  }
  held_blanks_.push_back(c);
  EmitContent(held_blanks_);
  held_blanks_.clear();
  only_calls_ = false;
  return true;
}

bool ToolCallParser::AfterMarkerStep() {
  const char c = text_[pos_];
  if (IsBlank(c)) {
    ++pos_;
    return true;
  }
  const bool args_only = !preset_name_.empty();
  const char open = format_ == ToolCallFormat::kMistral && !args_only ? '[' : '{';
  if (c == open) {
    StartRegion();
    return true;
  }
  if (format_ == ToolCallFormat::kMistral && !args_only && IsNameChar(c)) {
    mode_ = Mode::kMistralName;
    return true;
  }
  // Not a call after all: the marker is text.
  mode_ = Mode::kContent;
  preset_name_.clear();
  EmitContent(std::string_view(text_).substr(region_start_, pos_ - region_start_));
  only_calls_ = false;
  return true;
}

bool ToolCallParser::MistralNameStep() {
  const std::string_view rest = std::string_view(text_).substr(pos_);
  if (rest.substr(0, kMistralArgs.size()) == kMistralArgs) {
    pos_ += kMistralArgs.size();
    mode_ = Mode::kAfterMarker;
    skipping_call_id_ = false;
    return true;
  }
  // [TOOL_CALLS]name[CALL_ID]id[ARGS]{...} (Mistral Small 3.2): the model's id is not kept (the
  // answer's calls get ids of their own).
  if (!skipping_call_id_ && !preset_name_.empty() &&
      rest.substr(0, kMistralCallId.size()) == kMistralCallId) {
    pos_ += kMistralCallId.size();
    skipping_call_id_ = true;
    return true;
  }
  if (MayBecome(rest, kMistralArgs) || (!skipping_call_id_ && MayBecome(rest, kMistralCallId)))
    return false;
  if (IsNameChar(rest[0])) {
    if (!skipping_call_id_) preset_name_.push_back(rest[0]);
    ++pos_;
    return true;
  }
  return NotACall();
}

bool ToolCallParser::NotACall() {
  skipping_call_id_ = false;
  mode_ = Mode::kContent;
  preset_name_.clear();
  EmitContent(std::string_view(text_).substr(region_start_, pos_ - region_start_));
  only_calls_ = false;
  return true;
}

bool ToolCallParser::AfterCallStep() {
  const std::string_view rest = std::string_view(text_).substr(pos_);
  if (IsBlank(rest[0])) {
    ++pos_;
    return true;
  }
  if (rest.substr(0, kHermesClose.size()) == kHermesClose) {
    pos_ += kHermesClose.size();
    mode_ = Mode::kContent;
    return true;
  }
  if (MayBecome(rest, kHermesClose)) return false;
  mode_ = Mode::kContent;  // no closing tag: what follows is read as usual
  return true;
}

void ToolCallParser::StartRegion() {
  mode_ = Mode::kRegion;
  scanner_ = std::make_unique<JsonScanner>();
  call_depth_ = format_ == ToolCallFormat::kGeneric   ? 2
                : format_ == ToolCallFormat::kMistral ? 1
                                                      : 0;
  region_bad_ = false;
  region_sent_ = false;
  region_first_index_ = n_calls_;
  region_held_.clear();
  calls_.clear();
  in_response_ = false;
  saw_response_ = false;
}

void ToolCallParser::RegionStep() {
  std::vector<JsonScanner::Event> events;
  while (pos_ < text_.size()) {
    const size_t at = pos_++;
    const JsonScanner::State st = scanner_->Step(text_[at], at, &events);
    for (const JsonScanner::Event& e : events) OnEvent(e);
    events.clear();
    if (st == JsonScanner::State::kDone) return EndRegion(pos_);
    if (st == JsonScanner::State::kError) {
      region_bad_ = true;
      return EndRegion(at);
    }
  }
}

void ToolCallParser::OnEvent(const JsonScanner::Event& e) {
  if (!preset_name_.empty()) {  // [TOOL_CALLS]name[ARGS]{...}: the region is the arguments
    if (e.depth != 0) return;
    if (e.start) {
      calls_.push_back(Call{
          .has_name = true, .name = preset_name_, .args_first = e.first, .args_start = e.offset});
      StartCall(calls_.back());
    } else {
      calls_.back().args_end = e.offset;
      calls_.back().args_done = true;
      EndCall(calls_.back());
    }
    return;
  }
  if (format_ == ToolCallFormat::kGeneric) {
    if (e.depth == 1) return OnGenericTop(e);
    if (scanner_->KeyAt(1) != "tool_calls") return;
  }
  if (e.depth == call_depth_) {
    if (!e.start) return EndCall(calls_.back());
    calls_.emplace_back();
    if (e.first != '{') calls_.back().bad = true;
    return;
  }
  if (e.depth == call_depth_ + 1 && !calls_.empty()) OnCallEvent(e, calls_.back());
}

// {"tool_calls": [...]} or {"response": "..."}.
void ToolCallParser::OnGenericTop(const JsonScanner::Event& e) {
  if (e.start) {
    if (e.key == "response" && e.first == '"') {
      in_response_ = saw_response_ = true;
      response_sent_ = e.offset + 1;
      // From here the answer streams: the region is kept whatever follows (as a started call is).
      if (options_.stream_arguments) region_sent_ = true;
    } else if (e.key != "tool_calls" || e.first != '[') {
      region_bad_ = true;
    }
    return;
  }
  if (!in_response_) return;
  std::string decoded;
  DecodeJsonStringPrefix(
      std::string_view(text_).substr(response_sent_, e.offset - 1 - response_sent_),
      /*final=*/true, &decoded);
  EmitContent(decoded);
  response_sent_ = e.offset - 1;
  in_response_ = false;
}

void ToolCallParser::OnCallEvent(const JsonScanner::Event& e, Call& call) {
  const bool args_key = e.key == "arguments" || e.key == "parameters";
  if (e.start) {
    if (e.key == "name") {
      call.name_start = e.offset;
      if (e.first != '"') call.bad = true;
    } else if (args_key) {
      if (call.args_members++ > 0) return;
      call.args_first = e.first;
      call.args_start = e.offset;
      StartCall(call);
    }
    return;
  }
  if (e.key == "name" && !call.bad) {
    const std::string_view raw =
        std::string_view(text_).substr(call.name_start + 1, e.offset - 2 - call.name_start);
    call.name.clear();
    DecodeJsonStringPrefix(raw, /*final=*/true, &call.name);
    call.has_name = !call.name.empty();
    StartCall(call);
  } else if (args_key && call.args_members == 1) {
    call.args_end = e.offset;
    call.args_done = true;
  }
}

void ToolCallParser::StartCall(Call& call) {
  if (!options_.stream_arguments || call.started || !call.has_name || call.args_first != '{')
    return;
  call.started = true;
  call.index = n_calls_++;
  call.args_sent = call.args_start;
  Emit({.kind = ToolCallDelta::Kind::kCallStart, .index = call.index, .text = call.name});
}

void ToolCallParser::EndCall(Call& call) {
  if (call.bad || !call.has_name) {
    region_bad_ = true;
    return;
  }
  std::string args;
  if (call.args_first == 0) {
    args = "{}";
  } else if (call.args_first == '{') {
    args = text_.substr(
        call.args_sent > call.args_start ? call.args_sent : call.args_start,
        call.args_end - (call.args_sent > call.args_start ? call.args_sent : call.args_start));
  } else if (call.args_first == '"') {
    DecodeJsonStringPrefix(
        std::string_view(text_).substr(call.args_start + 1, call.args_end - call.args_start - 2),
        /*final=*/true, &args);
    if (!nlohmann::json::parse(args, nullptr, /*allow_exceptions=*/false).is_object()) {
      region_bad_ = true;
      return;
    }
  } else {
    region_bad_ = true;
    return;
  }
  if (!call.started) {
    call.started = true;
    call.index = n_calls_++;
    Emit({.kind = ToolCallDelta::Kind::kCallStart, .index = call.index, .text = call.name});
  }
  // The call is over: nothing of it streams again (a call without an arguments member has
  // args_end 0, and StreamPending would otherwise send the text from there).
  call.args_done = true;
  call.args_sent = call.args_end;
  if (!args.empty())
    Emit({.kind = ToolCallDelta::Kind::kArguments, .index = call.index, .text = std::move(args)});
}

void ToolCallParser::StreamPending(size_t limit) {
  if (in_response_) {
    std::string decoded;
    response_sent_ += DecodeJsonStringPrefix(
        std::string_view(text_).substr(response_sent_, limit - response_sent_), false, &decoded);
    EmitContent(decoded);
  }
  if (calls_.empty()) return;
  Call& call = calls_.back();
  const size_t end = call.args_done ? call.args_end : limit;
  if (!call.started || end <= call.args_sent) return;
  Emit({.kind = ToolCallDelta::Kind::kArguments,
        .index = call.index,
        .text = text_.substr(call.args_sent, end - call.args_sent)});
  call.args_sent = end;
}

void ToolCallParser::EndRegion(size_t resume) {
  // What streamed so far is the same whatever the split: send the rest up to where the region
  // ended, as a split just before that byte would have.
  if (region_sent_) StreamPending(resume);
  const bool any = !calls_.empty() || saw_response_;
  const bool keep = (!region_bad_ && any) || region_sent_;
  mode_ = Mode::kContent;
  if (keep) {
    for (ToolCallDelta& d : region_held_) Emit(std::move(d));
    if (format_ == ToolCallFormat::kHermes) mode_ = Mode::kAfterCall;
    if (saw_response_) only_calls_ = false;
  } else {
    n_calls_ = region_first_index_;
    EmitContent(std::string_view(text_).substr(region_start_, resume - region_start_));
    only_calls_ = false;
  }
  region_held_.clear();
  calls_.clear();
  scanner_.reset();
  preset_name_.clear();
  in_response_ = false;
  pos_ = resume;
}

void ToolCallParser::Finish(std::vector<ToolCallDelta>* out) {
  out_ = out;
  Run();
  const std::string_view rest = std::string_view(text_).substr(pos_);
  switch (mode_) {
    case Mode::kRegion:
      if (!region_sent_) {
        mode_ = Mode::kContent;
        n_calls_ = region_first_index_;
        EmitContent(std::string_view(text_).substr(region_start_));
      }
      break;
    case Mode::kAfterMarker:
    case Mode::kMistralName:
      mode_ = Mode::kContent;
      skipping_call_id_ = false;
      EmitContent(std::string_view(text_).substr(region_start_));
      break;
    case Mode::kContent:
      if (!rest.empty()) EmitContent(held_blanks_ + std::string(rest));
      break;
    case Mode::kAfterCall:
      break;
  }
  held_blanks_.clear();
  mode_ = Mode::kContent;
  pos_ = text_.size();
  out_ = nullptr;
}

void ApplyToolCallDeltas(const std::vector<ToolCallDelta>& deltas, ParsedToolOutput* out) {
  for (const ToolCallDelta& d : deltas) {
    if (d.kind == ToolCallDelta::Kind::kContent) {
      out->content += d.text;
      continue;
    }
    if (static_cast<size_t>(d.index) >= out->calls.size())
      out->calls.resize(static_cast<size_t>(d.index) + 1);
    if (d.kind == ToolCallDelta::Kind::kCallStart) {
      out->calls[static_cast<size_t>(d.index)].name = d.text;
    } else {
      out->calls[static_cast<size_t>(d.index)].arguments += d.text;
    }
  }
}

ParsedToolOutput ParseToolOutput(ToolCallFormat format, std::string_view text,
                                 ToolCallParserOptions options) {
  ToolCallParser parser(format, options);
  std::vector<ToolCallDelta> deltas;
  parser.Feed(text, &deltas);
  parser.Finish(&deltas);
  ParsedToolOutput out;
  ApplyToolCallDeltas(deltas, &out);
  return out;
}

}  // namespace gannet
