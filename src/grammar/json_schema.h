// JSON Schema to GBNF: the grammar of JSON texts valid against a schema, for structured outputs
// (OpenAI's response_format json_schema / json_object, `gannet run --json-schema`).
//
// Contract: every text the grammar accepts parses as JSON and validates against the schema (the
// grammar is sound); it need not accept every valid text (it is a useful subset):
// - properties come in declaration order (the schema must be parsed into an ordered_json to keep
//   it); optional ones may be left out; the construction is linear in the number of properties
//   (two rules per property), never one alternative per subset;
// - `additionalProperties` absent means none when `properties` or `required` is given (as
//   llama.cpp does: fewer digressions), any when neither is; extra properties (true or a schema)
//   come after the declared ones with keys written without escapes that differ from every
//   declared name (a duplicate key would override a declared value);
// - whitespace between tokens is nothing, one space, or a newline and an indentation of at most 20
//   spaces or tabs (one such run, never two in a row, so the model cannot loop on blanks), none
//   inside numbers and literals, none after the value;
// - integers have at most 15 digits and numbers at most 15 integer and 15 fraction digits (exact
//   in a double); a number's bounds (minimum, maximum, exclusive*) are enforced on the digits, and
//   bounded numbers have no exponent;
// - strings are escaped as JSON allows, without \u escapes of surrogates (every character unit is
//   one code point, so minLength/maxLength are exact); `pattern` follows json_schema_regex.h;
//   `format` date, time, date-time, uuid, ipv4 and email are patterns;
// - `oneOf` is treated as `anyOf` (the branches are not checked to be exclusive: keep them
//   disjoint); `allOf` (and `$ref` with sibling keywords) only where the parts merge key by key
//   (equal values, `required` united, `type` intersected, `properties` with different names);
// - `$ref` to a JSON pointer in the same document ("#", "#/$defs/x", "#/definitions/x", ...) is
//   one rule, recursion included (a schema that recurses without consuming text is refused by
//   Grammar::Compile as left recursion).
// Ignored (annotations): title, description, $schema, $id, $comment, examples, default,
// deprecated, readOnly, writeOnly; $defs and definitions are only reference targets. Any other
// keyword that is not enforced (multipleOf, uniqueItems true, contains, not, if/then/else,
// patternProperties, propertyNames, minProperties/maxProperties not implied by the schema, ...)
// or unknown is an error naming the keyword and the JSON pointer of its schema, never silently
// dropped.
//
// Limits (JsonSchemaLimits) bound the work and the grammar: schema nesting, properties per
// object, enum size, repetition bounds (each bound of a repetition lowers to that many GBNF
// rules), and the text size (within GbnfLimits).
//
// Thread-safety: pure functions.
#pragma once

#include <cstdint>
#include <memory>
#include <nlohmann/json_fwd.hpp>
#include <string>

#include "base/status.h"
#include "grammar/grammar.h"

namespace gannet::grammar {

struct JsonSchemaLimits {
  size_t max_depth = 64;                // nested subschemas on one path
  size_t max_subschemas = 20000;        // subschemas visited in all
  size_t max_properties = 256;          // properties of one object schema
  size_t max_enum = 1024;               // values of one enum
  size_t max_branches = 256;            // branches of one anyOf / oneOf
  uint32_t max_repetition = 1024;       // minLength/maxLength, minItems/maxItems, pattern {m,n}
  size_t max_total_repetition = 32768;  // sum of the bounds over the grammar
  size_t max_pattern_bytes = 4096;
  size_t max_grammar_bytes = 1 << 20;  // the GBNF text (the parser's own limit)
};

// The GBNF text of JSON texts valid against `schema` (root rule `root`). Errors are
// kInvalidArgument "json schema: ... (at /properties/x)" naming the keyword.
Result<std::string> JsonSchemaToGbnf(const nlohmann::ordered_json& schema,
                                     const JsonSchemaLimits& limits = {});

// JsonSchemaToGbnf, then Grammar::Compile; compile errors (left recursion through $ref) keep
// the "json schema:" prefix.
Result<std::shared_ptr<const Grammar>> CompileJsonSchema(const nlohmann::ordered_json& schema,
                                                         const JsonSchemaLimits& limits = {});

// The grammar of any JSON object (OpenAI's json_object mode), whitespace as above.
std::string JsonObjectGbnf();

}  // namespace gannet::grammar
