#include "server/openai_request.h"

#include <cmath>
#include <limits>
#include <nlohmann/json.hpp>

#include "grammar/grammar_cache.h"
#include "grammar/json_schema.h"
#include "server/openai_tools.h"

namespace gannet::server {
namespace {

using Json = nlohmann::ordered_json;

ApiError Invalid(std::string param, std::string message) {
  return ApiError{.http_status = 400, .message = std::move(message), .param = std::move(param)};
}

ApiError Unsupported(std::string param, std::string message) {
  return ApiError{.http_status = 400,
                  .message = std::move(message),
                  .param = std::move(param),
                  .code = "unsupported_parameter"};
}

// A field that is present and not null (OpenAI treats null as "not given").
const Json* Field(const Json& j, const char* name) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return nullptr;
  return &*it;
}

std::string TypeName(const Json& v) {
  if (v.is_string()) return "a string";
  if (v.is_boolean()) return "a boolean";
  if (v.is_number_integer() || v.is_number_unsigned()) return "an integer";
  if (v.is_number()) return "a number";
  if (v.is_array()) return "an array";
  if (v.is_object()) return "an object";
  return "null";
}

std::string WrongType(const char* name, const char* expected, const Json& v) {
  return std::string("Invalid type for '") + name + "': expected " + expected + ", but got " +
         TypeName(v) + ".";
}

std::string FormatNumber(double v) {
  Json j = v;
  return j.dump();
}

// Reads an optional number field within [lo, hi] (open ends when the flags say so).
std::optional<ApiError> ReadNumber(const Json& j, const char* name, double lo, double hi,
                                   bool lo_open, std::optional<double>* out) {
  const Json* v = Field(j, name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number()) return Invalid(name, WrongType(name, "a number", *v));
  double x = v->get<double>();
  bool below = lo_open ? !(x > lo) : !(x >= lo);
  if (!std::isfinite(x) || below || x > hi) {
    return Invalid(name, std::string("Invalid '") + name + "': " + FormatNumber(x) + " is not in " +
                             (lo_open ? "(" : "[") + FormatNumber(lo) + ", " + FormatNumber(hi) +
                             "].");
  }
  *out = x;
  return std::nullopt;
}

std::optional<ApiError> ReadInt(const Json& j, const char* name, int64_t lo, int64_t hi,
                                std::optional<int64_t>* out) {
  const Json* v = Field(j, name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_number_integer() && !v->is_number_unsigned())
    return Invalid(name, WrongType(name, "an integer", *v));
  if (v->is_number_unsigned() &&
      v->get<uint64_t>() > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
    return Invalid(name, std::string("Invalid '") + name + "': too large.");
  }
  int64_t x = v->get<int64_t>();
  if (x < lo || x > hi) {
    return Invalid(name, std::string("Invalid '") + name + "': " + std::to_string(x) +
                             " is not in [" + std::to_string(lo) + ", " + std::to_string(hi) +
                             "].");
  }
  *out = x;
  return std::nullopt;
}

std::optional<ApiError> ReadBool(const Json& j, const char* name, std::optional<bool>* out) {
  const Json* v = Field(j, name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_boolean()) return Invalid(name, WrongType(name, "a boolean", *v));
  *out = v->get<bool>();
  return std::nullopt;
}

std::optional<ApiError> ReadString(const Json& j, const char* name, std::string* out) {
  const Json* v = Field(j, name);
  if (v == nullptr) return std::nullopt;
  if (!v->is_string()) return Invalid(name, WrongType(name, "a string", *v));
  *out = v->get<std::string>();
  return std::nullopt;
}

std::optional<ApiError> ReadMessages(const Json& j, const RequestLimits& limits,
                                     CompletionRequest* out) {
  const Json* v = Field(j, "messages");
  if (v == nullptr) return Invalid("messages", "Missing required parameter: 'messages'.");
  if (!v->is_array()) return Invalid("messages", WrongType("messages", "an array", *v));
  if (v->empty())
    return Invalid("messages",
                   "Invalid 'messages': empty array. Expected an array with minimum length 1.");
  if (static_cast<int64_t>(v->size()) > limits.max_messages) {
    return Invalid("messages",
                   "Invalid 'messages': array too long. Expected an array with maximum "
                   "length " +
                       std::to_string(limits.max_messages) + ", but got an array with length " +
                       std::to_string(v->size()) + " instead.");
  }
  for (size_t i = 0; i < v->size(); ++i) {
    const Json& m = (*v)[i];
    const std::string at = "messages[" + std::to_string(i) + "]";
    if (!m.is_object())
      return Invalid(at, "Invalid '" + at + "': expected an object, but got " + TypeName(m) + ".");
    // A message's fields are looked up and copied one by one (linear each): bounded here.
    if (static_cast<int64_t>(m.size()) > limits.max_message_fields) {
      return Invalid(at, "Invalid '" + at + "': more than " +
                             std::to_string(limits.max_message_fields) + " fields.");
    }
    auto role = m.find("role");
    if (role == m.end())
      return Invalid(at + ".role", "Missing required parameter: '" + at + ".role'.");
    if (!role->is_string())
      return Invalid(at + ".role", WrongType((at + ".role").c_str(), "a string", *role));
    const std::string r = role->get<std::string>();
    if (r != "system" && r != "user" && r != "assistant" && r != "tool" && r != "developer") {
      return Invalid(at + ".role", "Invalid value: '" + r +
                                       "'. Supported values are: 'system', 'developer', "
                                       "'user', 'assistant' and 'tool'.");
    }
    auto content = m.find("content");
    if (content == m.end() || content->is_null()) {
      if (r != "assistant")
        return Invalid(at + ".content", "Missing required parameter: '" + at + ".content'.");
    } else if (content->is_array()) {
      for (size_t k = 0; k < content->size(); ++k) {
        const Json& p = (*content)[k];
        const std::string pat = at + ".content[" + std::to_string(k) + "]";
        if (!p.is_object()) return Invalid(pat, "Invalid '" + pat + "': expected an object.");
        auto type = p.find("type");
        if (type == p.end() || !type->is_string()) {
          return Invalid(pat + ".type", "Missing required parameter: '" + pat + ".type'.");
        }
        if (type->get<std::string>() != "text") {
          return Unsupported(pat + ".type", "Content parts of type '" + type->get<std::string>() +
                                                "' are not supported; only 'text' is.");
        }
        auto text = p.find("text");
        if (text == p.end() || !text->is_string()) {
          return Invalid(pat + ".text",
                         "Missing required parameter: '" + pat + ".text' (a string).");
        }
      }
    } else if (!content->is_string()) {
      return Invalid(at + ".content", WrongType((at + ".content").c_str(),
                                                "a string or an array of content parts", *content));
    }
    auto name = m.find("name");
    if (name != m.end() && !name->is_null() && !name->is_string()) {
      return Invalid(at + ".name", WrongType((at + ".name").c_str(), "a string", *name));
    }
    Result<ChatMessage> parsed = ChatMessageFromJson(m);
    if (!parsed.ok()) return Invalid(at, parsed.status().message());
    out->messages.push_back(std::move(parsed).value());
  }
  return std::nullopt;
}

std::optional<ApiError> ReadTokenIds(const Json& arr, const char* param, int32_t n_vocab,
                                     std::vector<int32_t>* out) {
  for (const Json& t : arr) {
    if (!t.is_number_integer() && !t.is_number_unsigned()) {
      return Invalid(param, std::string("Invalid '") + param + "': token ids must be integers.");
    }
    // nlohmann stores non-negative integers as unsigned; a huge one must not wrap to a small id.
    const bool huge = t.is_number_unsigned() && t.get<uint64_t>() >= static_cast<uint64_t>(n_vocab);
    const int64_t id = huge ? -1 : t.get<int64_t>();
    if (huge || id < 0 || id >= n_vocab) {
      return Invalid(param, std::string("Invalid '") + param + "': token id " + t.dump() +
                                " is out of range [0, " + std::to_string(n_vocab) + ").");
    }
    out->push_back(static_cast<int32_t>(id));
  }
  return std::nullopt;
}

std::optional<ApiError> ReadPrompt(const Json& j, const RequestLimits& limits,
                                   CompletionRequest* out) {
  const Json* v = Field(j, "prompt");
  if (v == nullptr) return Invalid("prompt", "Missing required parameter: 'prompt'.");
  if (v->is_string()) {
    out->prompt_text = v->get<std::string>();
    return std::nullopt;
  }
  if (!v->is_array()) return Invalid("prompt", WrongType("prompt", "a string or an array", *v));
  if (v->empty()) return Invalid("prompt", "Invalid 'prompt': empty array.");
  const Json& first = v->front();
  if (first.is_string() || first.is_array()) {
    // A batch of prompts: only a batch of one is served (n covers several completions of one
    // prompt).
    if (v->size() != 1) {
      return Unsupported("prompt",
                         "Invalid 'prompt': a batch of several prompts is not supported; send one "
                         "request per prompt.");
    }
    if (first.is_string()) {
      out->prompt_text = first.get<std::string>();
      return std::nullopt;
    }
    if (first.empty()) return Invalid("prompt", "Invalid 'prompt': empty array.");
    out->prompt_is_tokens = true;
    return ReadTokenIds(first, "prompt", limits.n_vocab, &out->prompt_tokens);
  }
  out->prompt_is_tokens = true;
  return ReadTokenIds(*v, "prompt", limits.n_vocab, &out->prompt_tokens);
}

std::optional<ApiError> ReadStop(const Json& j, const RequestLimits& limits,
                                 CompletionRequest* out) {
  const Json* v = Field(j, "stop");
  if (v == nullptr) return std::nullopt;
  std::vector<std::string> stops;
  if (v->is_string()) {
    stops.push_back(v->get<std::string>());
  } else if (v->is_array()) {
    if (static_cast<int64_t>(v->size()) > limits.max_stops) {
      return Invalid("stop", "Invalid 'stop': at most " + std::to_string(limits.max_stops) +
                                 " stop sequences.");
    }
    for (const Json& s : *v) {
      if (!s.is_string())
        return Invalid("stop", "Invalid 'stop': every stop sequence must be a string.");
      stops.push_back(s.get<std::string>());
    }
  } else {
    return Invalid("stop", WrongType("stop", "a string or an array of strings", *v));
  }
  for (std::string& s : stops) {
    if (!s.empty()) out->stop.push_back(std::move(s));
  }
  return std::nullopt;
}

std::optional<ApiError> ReadLogitBias(const Json& j, const RequestLimits& limits,
                                      CompletionRequest* out) {
  const Json* v = Field(j, "logit_bias");
  if (v == nullptr) return std::nullopt;
  if (!v->is_object()) return Invalid("logit_bias", WrongType("logit_bias", "an object", *v));
  for (auto it = v->begin(); it != v->end(); ++it) {
    const std::string& key = it.key();
    int64_t id = -1;
    bool digits = !key.empty() && key.size() <= 10;
    for (char c : key) digits = digits && c >= '0' && c <= '9';
    if (digits) id = std::stoll(key);
    if (!digits || id >= limits.n_vocab) {
      return Invalid("logit_bias", "Invalid key in 'logit_bias': '" + key +
                                       "' is not a token id in [0, " +
                                       std::to_string(limits.n_vocab) + ").");
    }
    if (!it.value().is_number()) {
      return Invalid("logit_bias",
                     "Invalid value for 'logit_bias' key '" + key + "': expected a number.");
    }
    double bias = it.value().get<double>();
    if (!std::isfinite(bias) || bias < -100 || bias > 100) {
      return Invalid("logit_bias", "Invalid value for 'logit_bias' key '" + key +
                                       "': " + FormatNumber(bias) + " is not in [-100, 100].");
    }
    out->sampling.logit_bias.emplace_back(static_cast<int32_t>(id), static_cast<float>(bias));
  }
  return std::nullopt;
}

// Fields OpenAI has that gannet refuses rather than ignores (ignoring them would change meaning).
std::optional<ApiError> RejectUnsupported(const Json& j, Endpoint endpoint) {
  if (endpoint == Endpoint::kCompletion) {
    if (const Json* tools = Field(j, "tools"); tools != nullptr) {
      return Unsupported("tools", "'tools' is for /v1/chat/completions.");
    }
    if (const Json* fc = Field(j, "functions"); fc != nullptr) {
      return Unsupported("functions", "'functions' is not supported.");
    }
    if (const Json* echo = Field(j, "echo"); echo != nullptr && *echo != false) {
      return Unsupported("echo", "'echo' is not supported yet.");
    }
    if (const Json* suffix = Field(j, "suffix"); suffix != nullptr && *suffix != "") {
      return Unsupported("suffix", "'suffix' is not supported.");
    }
  }
  if (const Json* best = Field(j, "best_of"); best != nullptr && *best != 1) {
    return Unsupported("best_of", "'best_of' other than 1 is not supported.");
  }
  return std::nullopt;
}

// response_format: "text" (nothing), "json_object" (any JSON object) or "json_schema" (its
// json_schema.schema compiled to a grammar here, so an unsupported keyword is a 400 naming it).
// REQUIRES: the `grammar` field was read (the two cannot be combined).
std::optional<ApiError> ReadResponseFormat(const Json& j, CompletionRequest* out) {
  const Json* rf = Field(j, "response_format");
  if (rf == nullptr) return std::nullopt;
  if (!rf->is_object()) {
    return Invalid("response_format", WrongType("response_format", "an object", *rf));
  }
  const Json* type = Field(*rf, "type");
  if (type == nullptr || !type->is_string()) {
    return Invalid("response_format", "Missing required parameter: 'response_format.type'.");
  }
  const std::string t = type->get<std::string>();
  if (t == "text") return std::nullopt;
  if (t != "json_object" && t != "json_schema") {
    return Invalid("response_format", "Invalid value for 'response_format.type': '" + t +
                                          "'. Supported values are: 'text', 'json_object' and "
                                          "'json_schema'.");
  }
  if (out->grammar != nullptr) {
    return Invalid("response_format",
                   "'grammar' and a JSON 'response_format' cannot be used together.");
  }
  Result<std::shared_ptr<const grammar::Grammar>> g = Status::Internal("unset");
  if (t == "json_object") {
    g = grammar::CompileShared(grammar::JsonObjectGbnf());
  } else {
    const Json* js = Field(*rf, "json_schema");
    if (js == nullptr || !js->is_object()) {
      return Invalid("response_format",
                     "Missing required parameter: 'response_format.json_schema'.");
    }
    if (const Json* name = Field(*js, "name"); name != nullptr && !name->is_string()) {
      return Invalid("response_format",
                     WrongType("response_format.json_schema.name", "a string", *name));
    }
    if (const Json* strict = Field(*js, "strict"); strict != nullptr && !strict->is_boolean()) {
      return Invalid("response_format",
                     WrongType("response_format.json_schema.strict", "a boolean", *strict));
    }
    const Json* schema = Field(*js, "schema");
    if (schema == nullptr) {
      return Invalid("response_format",
                     "Missing required parameter: 'response_format.json_schema.schema'.");
    }
    if (!schema->is_object() && !schema->is_boolean()) {
      return Invalid("response_format",
                     WrongType("response_format.json_schema.schema", "an object", *schema));
    }
    // The converter bounds its own work (depth, properties, repetitions, grammar size).
    g = grammar::CompileJsonSchema(*schema);
  }
  if (!g.ok()) {
    return Invalid("response_format",
                   "Invalid 'response_format.json_schema.schema': " + g.status().message());
  }
  out->grammar = std::move(g).value();
  return std::nullopt;
}

// temperature, top_p, top_k, min_p, the penalties and seed, into out->sampling.
std::optional<ApiError> ReadSampling(const Json& j, CompletionRequest* out) {
  std::optional<int64_t> i;
  std::optional<double> d;
  if (auto e = ReadNumber(j, "temperature", 0, 2, false, &d)) return e;
  if (d) out->sampling.temperature = static_cast<float>(*d);
  d.reset();
  if (auto e = ReadNumber(j, "top_p", 0, 1, false, &d)) return e;
  if (d) {
    if (*d == 0) {
      out->sampling.top_k = 1;  // keeps only the most likely token, which is what top_p -> 0 means
    } else {
      out->sampling.top_p = static_cast<float>(*d);
    }
  }
  i.reset();
  if (auto e = ReadInt(j, "top_k", -1, std::numeric_limits<int32_t>::max(), &i)) return e;
  if (i && *i > 0 && out->sampling.top_k != 1)
    out->sampling.top_k = static_cast<int32_t>(*i);  // -1, 0: off
  d.reset();
  if (auto e = ReadNumber(j, "min_p", 0, 1, false, &d)) return e;
  if (d) out->sampling.min_p = static_cast<float>(*d);
  d.reset();
  if (auto e = ReadNumber(j, "presence_penalty", -2, 2, false, &d)) return e;
  if (d) out->sampling.presence_penalty = static_cast<float>(*d);
  d.reset();
  if (auto e = ReadNumber(j, "frequency_penalty", -2, 2, false, &d)) return e;
  if (d) out->sampling.frequency_penalty = static_cast<float>(*d);
  d.reset();
  if (auto e = ReadNumber(j, "repetition_penalty", 0, 10, true, &d)) return e;
  if (d) out->sampling.repeat_penalty = static_cast<float>(*d);
  i.reset();
  if (auto e = ReadInt(j, "seed", std::numeric_limits<int64_t>::min(),
                       std::numeric_limits<int64_t>::max(), &i)) {
    return e;
  }
  if (i) out->sampling.seed = static_cast<uint64_t>(*i);
  return std::nullopt;
}

// Chat: logprobs (boolean) + top_logprobs; completions: logprobs (the number of alternatives).
std::optional<ApiError> ReadLogprobs(const Json& j, Endpoint endpoint, const RequestLimits& limits,
                                     CompletionRequest* out) {
  std::optional<int64_t> i;
  if (endpoint == Endpoint::kChat) {
    std::optional<bool> b;
    if (auto e = ReadBool(j, "logprobs", &b)) return e;
    out->logprobs = b.value_or(false);
    i.reset();
    if (auto e = ReadInt(j, "top_logprobs", 0, limits.max_top_logprobs, &i)) return e;
    if (i) {
      if (!out->logprobs) {
        return Invalid("top_logprobs",
                       "Invalid 'top_logprobs': 'logprobs' must be set to true when "
                       "'top_logprobs' is used.");
      }
      out->top_logprobs = static_cast<int32_t>(*i);
    }
  } else {
    i.reset();
    if (auto e = ReadInt(j, "logprobs", 0, limits.max_top_logprobs, &i)) return e;
    if (i) {
      out->logprobs = true;
      out->top_logprobs = static_cast<int32_t>(*i);
    }
  }
  return std::nullopt;
}

// stream and stream_options.include_usage.
std::optional<ApiError> ReadStreaming(const Json& j, CompletionRequest* out) {
  std::optional<bool> stream;
  if (auto e = ReadBool(j, "stream", &stream)) return e;
  out->stream = stream.value_or(false);
  if (const Json* so = Field(j, "stream_options"); so != nullptr) {
    if (!so->is_object())
      return Invalid("stream_options", WrongType("stream_options", "an object", *so));
    if (!out->stream) {
      return Invalid("stream_options",
                     "The 'stream_options' parameter is only allowed when 'stream' is enabled.");
    }
    std::optional<bool> usage;
    if (auto it = so->find("include_usage"); it != so->end() && !it->is_null()) {
      if (!it->is_boolean()) {
        return Invalid("stream_options.include_usage",
                       WrongType("stream_options.include_usage", "a boolean", *it));
      }
      usage = it->get<bool>();
    }
    out->include_usage = usage.value_or(false);
  }
  return std::nullopt;
}

}  // namespace

std::string ApiErrorJson(const ApiError& e) {
  Json err = Json::object();
  err["message"] = e.message;
  err["type"] = e.type;
  err["param"] = e.param.empty() ? Json(nullptr) : Json(e.param);
  err["code"] = e.code.empty() ? Json(nullptr) : Json(e.code);
  Json j = Json::object();
  j["error"] = std::move(err);
  return j.dump(-1, ' ', false, Json::error_handler_t::replace);
}

std::optional<ApiError> ParseCompletionRequest(std::string_view body, Endpoint endpoint,
                                               const RequestLimits& limits,
                                               CompletionRequest* out) {
  *out = CompletionRequest{};
  out->endpoint = endpoint;
  // OpenAI's defaults: plain softmax sampling at temperature 1 unless a field says otherwise.
  out->sampling.temperature = 1.0f;
  out->sampling.top_k = 0;
  out->sampling.top_p = 1.0f;
  out->sampling.min_p = 0.0f;
  out->sampling.repeat_penalty = 1.0f;

  // Bounded while parsing (depth, sizes, counts): nothing below recurses or loops further than
  // the limits allow, whatever the client sent.
  Result<Json> parsed = ParseBoundedJson(body, limits.json);
  if (!parsed.ok()) {
    if (parsed.status().code() == StatusCode::kResourceExhausted) {
      return ApiError{.message =
                          "The JSON body of your request is too large or too deeply "
                          "nested: " +
                          parsed.status().message() + ".",
                      .code = "json_limit_exceeded"};
    }
    return ApiError{.message =
                        "We could not parse the JSON body of your request. The body must "
                        "be valid JSON: " +
                        parsed.status().message() + "."};
  }
  const Json& j = parsed.value();
  if (!j.is_object()) return ApiError{.message = "The request body must be a JSON object."};

  if (auto e = ReadString(j, "model", &out->model)) return e;
  if (auto e = RejectUnsupported(j, endpoint)) return e;
  if (endpoint == Endpoint::kChat) {
    if (auto e = ReadMessages(j, limits, out)) return e;
  } else {
    if (auto e = ReadPrompt(j, limits, out)) return e;
  }

  std::optional<int64_t> i;
  // max_completion_tokens is the newer name; when both are given it wins (it is what new clients
  // set).
  if (auto e = ReadInt(j, "max_tokens", 1, std::numeric_limits<int32_t>::max(), &i)) return e;
  if (i) out->max_tokens = static_cast<int32_t>(*i);
  i.reset();
  if (auto e = ReadInt(j, "max_completion_tokens", 1, std::numeric_limits<int32_t>::max(), &i))
    return e;
  if (i) out->max_tokens = static_cast<int32_t>(*i);

  if (auto e = ReadSampling(j, out)) return e;
  if (auto e = ReadStop(j, limits, out)) return e;
  i.reset();
  if (auto e = ReadInt(j, "n", 1, limits.max_n, &i)) return e;
  if (i) out->n = static_cast<int32_t>(*i);

  if (auto e = ReadLogprobs(j, endpoint, limits, out)) return e;
  if (auto e = ReadLogitBias(j, limits, out)) return e;

  if (auto e = ReadStreaming(j, out)) return e;
  if (auto e = ReadString(j, "user", &out->user)) return e;
  std::optional<bool> ignore_eos;
  if (auto e = ReadBool(j, "ignore_eos", &ignore_eos)) return e;
  out->ignore_eos = ignore_eos.value_or(false);
  std::string grammar;
  if (auto e = ReadString(j, "grammar", &grammar)) return e;
  if (!grammar.empty()) {
    // The parser bounds its own work (text size, rules, nesting, repetition).
    Result<std::shared_ptr<const grammar::Grammar>> g = grammar::CompileShared(grammar);
    if (!g.ok()) return Invalid("grammar", "Invalid 'grammar': " + g.status().message());
    out->grammar = std::move(g).value();
  }
  if (auto e = ReadResponseFormat(j, out)) return e;
  if (endpoint == Endpoint::kChat) {
    if (auto e = ReadToolFields(j, out)) return e;
    if (out->tools && out->tools->choice != ToolChoiceMode::kNone) {
      if (out->grammar != nullptr) {
        return Invalid(Field(j, "grammar") != nullptr ? "grammar" : "response_format",
                       "'tools' cannot be combined with 'grammar' or a JSON 'response_format' "
                       "(the calls have their own grammar); use tool_choice 'none' or leave "
                       "them out.");
      }
      if (out->logprobs) {
        return Unsupported("logprobs", "'logprobs' is not supported together with 'tools'.");
      }
    }
  }

  if (Status s = out->sampling.Validate(limits.n_vocab); !s.ok()) return Invalid("", s.message());
  return std::nullopt;
}

ApiError ContextLengthError(Endpoint endpoint, int64_t context_length, int64_t prompt_tokens,
                            int64_t max_tokens, bool max_tokens_given) {
  const char* where = endpoint == Endpoint::kChat ? "messages" : "prompt";
  std::string msg = "This model's maximum context length is " + std::to_string(context_length) +
                    " tokens. However, ";
  if (max_tokens_given) {
    msg += "you requested " + std::to_string(prompt_tokens + max_tokens) + " tokens (" +
           std::to_string(prompt_tokens) + " in the " + where + ", " + std::to_string(max_tokens) +
           " in the completion). Please reduce the length of the " + where + " or completion.";
  } else {
    msg += "your " + std::string(where) + " resulted in " + std::to_string(prompt_tokens) +
           " tokens, which leaves no room for a completion. Please reduce the length of the " +
           where + ".";
  }
  return ApiError{.http_status = 400,
                  .message = std::move(msg),
                  .param = max_tokens_given ? "max_tokens" : where,
                  .code = "context_length_exceeded"};
}

}  // namespace gannet::server
