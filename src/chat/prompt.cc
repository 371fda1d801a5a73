#include "chat/prompt.h"

#include <string>
#include <utility>

namespace gannet {

Result<std::vector<int32_t>> RenderChatPrompt(const ChatTemplate& tmpl, const Tokenizer& tok,
                                              ChatRenderInput input) {
  if (input.bos_token.empty() && tok.bos() >= 0) input.bos_token = tok.token_text(tok.bos());
  if (input.eos_token.empty() && tok.eos() >= 0) input.eos_token = tok.token_text(tok.eos());
  GANNET_ASSIGN_OR_RETURN(std::string text, tmpl.Render(input));
  // The template writes BOS itself when the model wants one; add it only if it did not.
  std::vector<int32_t> ids = tok.Encode(text, /*add_special=*/false, /*parse_special=*/true);
  if (tok.add_bos() && tok.bos() >= 0 && (ids.empty() || ids.front() != tok.bos()))
    ids.insert(ids.begin(), tok.bos());
  return ids;
}

}  // namespace gannet
