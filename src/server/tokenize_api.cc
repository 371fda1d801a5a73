#include "server/tokenize_api.h"

#include "base/utf8.h"

namespace gannet::server {
namespace {

using Json = nlohmann::ordered_json;

ApiError Invalid(std::string param, std::string message) {
  return ApiError{.http_status = 400, .message = std::move(message), .param = std::move(param)};
}

std::optional<ApiError> ParseObject(std::string_view body, const JsonLimits& limits, Json* out) {
  Result<Json> j = ParseBoundedJson(body, limits);
  if (!j.ok()) {
    return ApiError{
        .http_status = 400,
        .message = "The request body is not valid JSON: " + j.status().message(),
        .code = j.status().code() == StatusCode::kResourceExhausted ? "json_limit_exceeded" : ""};
  }
  if (!j->is_object()) return Invalid("", "The request body must be a JSON object.");
  *out = std::move(j).value();
  return std::nullopt;
}

std::optional<ApiError> ReadFlag(const Json& j, const char* name, bool* out) {
  auto it = j.find(name);
  if (it == j.end() || it->is_null()) return std::nullopt;
  if (!it->is_boolean())
    return Invalid(name, std::string("Invalid type for '") + name + "': expected a boolean.");
  *out = it->get<bool>();
  return std::nullopt;
}

Json Piece(const std::string& piece) {
  if (unicode::ValidUtf8Prefix(piece) == piece.size()) return piece;
  Json bytes = Json::array();
  for (unsigned char c : piece) bytes.push_back(static_cast<int>(c));
  return bytes;
}

std::string Dump(const Json& j) { return j.dump(-1, ' ', false, Json::error_handler_t::replace); }

}  // namespace

std::optional<ApiError> TokenizeJson(std::string_view body, const Tokenizer& tok,
                                     const JsonLimits& limits, std::string* out) {
  Json j;
  if (auto err = ParseObject(body, limits, &j)) return err;
  auto content = j.find("content");
  if (content == j.end() || content->is_null())
    return Invalid("content", "Missing required parameter: 'content'.");
  if (!content->is_string())
    return Invalid("content", "Invalid type for 'content': expected a string.");
  bool add_special = false, parse_special = true, with_pieces = false;
  if (auto e = ReadFlag(j, "add_special", &add_special)) return e;
  if (auto e = ReadFlag(j, "parse_special", &parse_special)) return e;
  if (auto e = ReadFlag(j, "with_pieces", &with_pieces)) return e;
  const std::vector<int32_t> ids =
      tok.Encode(content->get_ref<const std::string&>(), add_special, parse_special);
  Json tokens = Json::array();
  for (int32_t id : ids) {
    if (with_pieces) {
      tokens.push_back(Json{{"id", id}, {"piece", Piece(tok.TokenToPiece(id, true))}});
    } else {
      tokens.push_back(id);
    }
  }
  *out = Dump(Json{{"tokens", std::move(tokens)}});
  return std::nullopt;
}

std::optional<ApiError> DetokenizeJson(std::string_view body, const Tokenizer& tok,
                                       const JsonLimits& limits, std::string* out) {
  Json j;
  if (auto err = ParseObject(body, limits, &j)) return err;
  auto tokens = j.find("tokens");
  if (tokens == j.end() || tokens->is_null())
    return Invalid("tokens", "Missing required parameter: 'tokens'.");
  if (!tokens->is_array())
    return Invalid("tokens", "Invalid type for 'tokens': expected an array of token ids.");
  std::vector<int32_t> ids;
  ids.reserve(tokens->size());
  for (size_t i = 0; i < tokens->size(); ++i) {
    const Json& v = (*tokens)[i];
    const std::string at = "tokens[" + std::to_string(i) + "]";
    if (!v.is_number_integer() && !v.is_number_unsigned())
      return Invalid(at, "Invalid type for '" + at + "': expected an integer token id.");
    if (v.is_number_unsigned() ? v.get<uint64_t>() >= static_cast<uint64_t>(tok.n_vocab())
                               : (v.get<int64_t>() < 0 || v.get<int64_t>() >= tok.n_vocab())) {
      return Invalid(at, "Invalid '" + at + "': " + v.dump() +
                             " is not a token id of this model (" + std::to_string(tok.n_vocab()) +
                             " tokens).");
    }
    ids.push_back(static_cast<int32_t>(v.get<int64_t>()));
  }
  *out = Dump(Json{{"content", tok.Decode(ids, /*render_special=*/true)}});
  return std::nullopt;
}

std::string PropsJson(const PropsInfo& info, const Tokenizer& tok) {
  auto token_text = [&](int32_t id) -> Json {
    if (id < 0 || id >= tok.n_vocab()) return nullptr;
    return Piece(tok.TokenToPiece(id, true));
  };
  Json j{{"model", info.model_id},
         {"n_ctx", info.context_length},
         {"n_vocab", tok.n_vocab()},
         {"total_slots", info.total_slots},
         {"bos_token", token_text(tok.bos())},
         {"eos_token", token_text(tok.eos())},
         {"add_bos_token", tok.add_bos()},
         {"chat_template", info.chat_template},
         {"speculative", info.speculative},
         {"build_info", info.build}};
  return Dump(j);
}

}  // namespace gannet::server
