// libFuzzer target: request bodies through ParseCompletionRequest (server/openai_request.h), both
// endpoints, with small JSON limits so that every limit is reached. A body ParseBoundedJson accepts
// must be the value nlohmann's own parser builds (same keys, order, duplicates, numbers), and an
// error must be a 400 in OpenAI's shape.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <nlohmann/json.hpp>
#include <string_view>

#include "server/bounded_json.h"
#include "server/openai_request.h"

namespace {

void Check(bool cond) {
  if (!cond) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  using gannet::server::Endpoint;
  const Endpoint endpoint = (data[0] & 1) ? Endpoint::kCompletion : Endpoint::kChat;
  std::string_view body(reinterpret_cast<const char*>(data + 1), size - 1);
  gannet::server::RequestLimits limits{
      .n_vocab = 1000, .max_messages = 32, .max_message_fields = 8};
  limits.json = gannet::server::JsonLimits{.max_depth = 16,
                                           .max_object_keys = 64,
                                           .max_array_elements = 256,
                                           .max_string_bytes = 1024,
                                           .max_values = 2048,
                                           .max_number_chars = 32};
  gannet::server::CompletionRequest req;
  std::optional<gannet::server::ApiError> err =
      gannet::server::ParseCompletionRequest(body, endpoint, limits, &req);
  if (err) {
    Check(err->http_status == 400 && !err->message.empty());
    Check(!gannet::server::ApiErrorJson(*err).empty());
  } else {
    Check(req.n >= 1 && req.n <= limits.n_vocab);
  }

  gannet::Result<nlohmann::ordered_json> bounded =
      gannet::server::ParseBoundedJson(body, limits.json);
  if (bounded.ok()) {
    nlohmann::ordered_json reference = nlohmann::ordered_json::parse(body, nullptr, false);
    Check(!reference.is_discarded());
    Check(reference.dump() == bounded->dump());
  } else if (bounded.status().code() == gannet::StatusCode::kInvalidArgument) {
    // A syntax error for the bounded parse is one for nlohmann's too.
    Check(nlohmann::ordered_json::parse(body, nullptr, false).is_discarded());
  }
  return 0;
}
