// A conversation -> the prompt's token ids: the one way `gannet chat` and the server build a chat
// prompt, so both feed the model exactly the same ids.
//
//   ChatRenderInput in{.messages = messages, .now = std::time(nullptr)};
//   Result<std::vector<int32_t>> ids = RenderChatPrompt(tmpl, tok, std::move(in));
//
// Thread-safety: as ChatTemplate::Render and Tokenizer::Encode (both const): concurrent calls are
// fine.
#pragma once

#include <cstdint>
#include <vector>

#include "base/status.h"
#include "chat/template.h"
#include "tokenizer/tokenizer.h"

namespace gannet {

// Renders `input` with `tmpl` and encodes the text with `tok` (special-token texts the template
// wrote become their ids; no BOS/EOS added by the encoder). An empty `input.bos_token` /
// `input.eos_token` is filled with the tokenizer's BOS / EOS text ("" when it has none); the caller
// sets the messages, `now`, tools and extra variables. The template writes BOS itself when the
// model wants one; when the tokenizer wants a BOS (add_bos) and the ids do not start with it, one
// is inserted in front. A template that fails or rejects the conversation (raise_exception) comes
// back as its Status. The ids may be empty (a template that renders nothing, with no BOS wanted).
Result<std::vector<int32_t>> RenderChatPrompt(const ChatTemplate& tmpl, const Tokenizer& tok,
                                              ChatRenderInput input);

}  // namespace gannet
