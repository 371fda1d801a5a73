// A JSON parse whose cost and shape are bounded while it parses, for request bodies a client
// controls.
//
// nlohmann's own `parse` builds whatever the text describes: a value nested a million deep (which
// later code copies or walks recursively and overflows the stack on), objects of 100k keys (each
// `ordered_json` insertion scans the keys before it: quadratic), strings and arrays as large as
// the body. ParseBoundedJson drives nlohmann's SAX parser (iterative, linear in the text) and
// builds the `ordered_json` value itself, refusing at the first event past a limit: deeper
// nesting, more keys in one object, more elements in one array, a longer string or key, more
// values in all, a longer number literal. Object members are gathered and de-duplicated with a
// hash index (the last duplicate wins, in the first one's place, as `ordered_json` does), then
// moved into place without reallocation, so building costs O(text) whatever the shape.
//
// Once parsed, a value's depth is at most `max_depth`, so code that recurses over it (copies,
// conversions to template values, dumps) recurses at most that deep; destruction is iterative in
// nlohmann either way.
//
// Pure functions; thread-safe.
#pragma once

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <string_view>

#include "base/status.h"

namespace gannet::server {

// Bounds on a parsed JSON text. The defaults admit every request gannet can serve (a prompt
// longer than any context, thousands of messages, logit_bias over a thousand tokens) and keep a
// hostile body of any shape to a parse in tens of milliseconds per MiB.
struct JsonLimits {
  int32_t max_depth = 64;                // nested arrays / objects; the body's object is depth 1
  int32_t max_object_keys = 4096;        // members of one object (logit_bias, tool schemas)
  int32_t max_array_elements = 1 << 18;  // elements of one array (a prompt of token ids)
  int64_t max_string_bytes = 4 << 20;    // one string or key, in bytes once unescaped
  int64_t max_values = 1 << 20;          // every value of the document, containers included
  int32_t max_number_chars = 64;         // one number literal (a long one is costly to convert)
};

// Parses `text` as one JSON value within `limits`. A syntax error is InvalidArgument with
// nlohmann's line and column; a limit exceeded is ResourceExhausted naming the limit and its
// value, e.g. "the body nests arrays and objects deeper than 64 levels (limit of this server)".
Result<nlohmann::ordered_json> ParseBoundedJson(std::string_view text, const JsonLimits& limits);

}  // namespace gannet::server
