// RenderChatPrompt: the template's text encoded with special tokens parsed, BOS inserted once when
// the tokenizer wants one and the template did not write it, template errors as a Status.
#include "chat/prompt.h"

#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

namespace gannet {
namespace {

using Ids = std::vector<int32_t>;

// A SentencePiece-style vocabulary: <unk> 0, <s> 1, </s> 2, <|im_end|> 3 (control), then one
// token per letter a..z (4..29), so a text's ids are easy to write down.
std::unique_ptr<Tokenizer> MakeTokenizer(bool add_bos) {
  VocabSpec s;
  s.model = VocabModel::kSpm;
  s.add_space_prefix = false;
  s.add_bos = add_bos;
  s.tokens = {"<unk>", "<s>", "</s>", "<|im_end|>"};
  s.types = {TokenType::kUnknown, TokenType::kControl, TokenType::kControl, TokenType::kControl};
  for (char c = 'a'; c <= 'z'; ++c) {
    s.tokens.push_back(std::string(1, c));
    s.types.push_back(TokenType::kNormal);
  }
  s.bos = 1;
  s.eos = 2;
  s.unk = 0;
  Result<std::unique_ptr<Tokenizer>> t = Tokenizer::FromVocab(std::move(s));
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return t.ok() ? std::move(t).value() : nullptr;
}

int32_t Letter(char c) { return 4 + (c - 'a'); }

ChatTemplate Parse(const char* source) {
  Result<ChatTemplate> t = ChatTemplate::Parse(source);
  EXPECT_TRUE(t.ok()) << t.status().ToString();
  return std::move(t).value();
}

ChatRenderInput OneUserMessage(std::string text) {
  return ChatRenderInput{.messages = {ChatMessage{.role = "user", .content = std::move(text)}}};
}

TEST(RenderChatPrompt, InsertsBosWhenTheTemplateDoesNotWriteIt) {
  auto tok = MakeTokenizer(/*add_bos=*/true);
  ASSERT_NE(tok, nullptr);
  const ChatTemplate tmpl = Parse("{% for m in messages %}{{ m.content }}<|im_end|>{% endfor %}");
  Result<Ids> ids = RenderChatPrompt(tmpl, *tok, OneUserMessage("ab"));
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  // Special-token text the template writes is parsed (<|im_end|> -> 3); BOS goes in front once.
  EXPECT_EQ(*ids, (Ids{1, Letter('a'), Letter('b'), 3}));
}

TEST(RenderChatPrompt, DoesNotDuplicateTheBosTheTemplateWrites) {
  auto tok = MakeTokenizer(/*add_bos=*/true);
  ASSERT_NE(tok, nullptr);
  // bos_token and eos_token come from the tokenizer when the caller leaves them empty.
  const ChatTemplate tmpl =
      Parse("{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}{{ eos_token }}");
  Result<Ids> ids = RenderChatPrompt(tmpl, *tok, OneUserMessage("c"));
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  EXPECT_EQ(*ids, (Ids{1, Letter('c'), 2}));
}

TEST(RenderChatPrompt, CallerTokensAndNoBosWhenTheTokenizerWantsNone) {
  auto tok = MakeTokenizer(/*add_bos=*/false);
  ASSERT_NE(tok, nullptr);
  const ChatTemplate tmpl =
      Parse("{{ bos_token }}{% for m in messages %}{{ m.content }}{% endfor %}");
  ChatRenderInput in = OneUserMessage("d");
  in.bos_token = "x";  // the caller's text wins over the tokenizer's
  Result<Ids> ids = RenderChatPrompt(tmpl, *tok, std::move(in));
  ASSERT_TRUE(ids.ok()) << ids.status().ToString();
  EXPECT_EQ(*ids, (Ids{Letter('x'), Letter('d')}));
}

TEST(RenderChatPrompt, TemplateErrorsComeBackAsAStatus) {
  auto tok = MakeTokenizer(/*add_bos=*/true);
  ASSERT_NE(tok, nullptr);
  const ChatTemplate tmpl = Parse("{{ raise_exception('no user turns, please') }}");
  Result<Ids> ids = RenderChatPrompt(tmpl, *tok, OneUserMessage("e"));
  ASSERT_FALSE(ids.ok());
  EXPECT_EQ(ids.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(ids.status().message().find("no user turns, please"), std::string::npos)
      << ids.status().message();
}

}  // namespace
}  // namespace gannet
