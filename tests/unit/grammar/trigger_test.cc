// TriggerWatch: lazy grammars start at the first trigger (token, word across tokens, start word),
// the matcher reads the trigger's part, and tokens whose part the grammar refuses are marked.
#include "grammar/trigger.h"

#include <gtest/gtest.h>

#include "grammar/grammar.h"

namespace gannet::grammar {
namespace {

//                                     0     1          2         3      4    5    6     7
const std::vector<std::string> kVocab = {"<to", "ol>", "<tool>{", "<tool>x", "{", "}", "hi", "",
                                         // 8      9         10
                                         " ", "{\"n\"", "<eos>"};

struct Fixture {
  std::shared_ptr<const TokenVocabulary> vocab;
  std::shared_ptr<const Grammar> grammar;
  Matcher matcher;
};

Fixture Make(const std::string& gbnf) {
  auto v = TokenVocabulary::Create(kVocab, std::vector<int32_t>{10});
  auto g = Grammar::Compile(gbnf);
  EXPECT_TRUE(v.ok() && g.ok());
  auto m = Matcher::Create(*g);
  EXPECT_TRUE(m.ok());
  return Fixture{*v, *g, std::move(m).value()};
}

std::shared_ptr<const GrammarTriggers> Triggers(GrammarTriggers t) {
  return std::make_shared<const GrammarTriggers>(std::move(t));
}

TEST(TriggerWatchTest, WordAcrossTokensStartsTheGrammarAtItsFirstByte) {
  Fixture f = Make(R"(root ::= "<tool>" "{" "}")");
  TriggerWatch w(Triggers({.words = {"<tool>"}}));
  ASSERT_TRUE(w.Observe(*f.vocab, 6, &f.matcher));  // "hi": free text
  ASSERT_TRUE(w.Observe(*f.vocab, 0, &f.matcher));  // "<to"
  EXPECT_FALSE(w.fired());
  std::optional<TriggerWatch::Fire> fire = w.Check(1, "ol>");
  ASSERT_TRUE(fire.has_value());
  EXPECT_EQ(fire->text, "<tool>");
  ASSERT_TRUE(w.Observe(*f.vocab, 1, &f.matcher));
  EXPECT_TRUE(w.fired());
  EXPECT_FALSE(w.Check(2, "<tool>{").has_value());  // fired: the watch is done
  // The matcher read "<tool>": "{" comes next.
  EXPECT_TRUE(f.vocab->AcceptToken(&f.matcher, 4));
  EXPECT_TRUE(f.vocab->AcceptToken(&f.matcher, 5));
  EXPECT_TRUE(f.matcher.IsComplete());
}

TEST(TriggerWatchTest, RefusedRestIsNotTakenAndIsMarked) {
  Fixture f = Make(R"(root ::= "<tool>" "{" "}")");
  TriggerWatch w(Triggers({.words = {"<tool>"}}));
  // "<tool>x": the word, then "x", which the grammar refuses.
  EXPECT_FALSE(w.Observe(*f.vocab, 3, &f.matcher));
  EXPECT_FALSE(w.fired());
  std::vector<uint32_t> mask(1);
  w.OrRefused(*f.vocab, f.matcher, mask);
  EXPECT_EQ(mask[0], 1u << 3);  // "<tool>{" is fine, "<tool>x" is not
  ASSERT_TRUE(w.Observe(*f.vocab, 2, &f.matcher));
  EXPECT_TRUE(w.fired());
  EXPECT_TRUE(f.vocab->AcceptToken(&f.matcher, 5));
  EXPECT_TRUE(f.matcher.IsComplete());
}

TEST(TriggerWatchTest, ControlTokenTriggerIsReadAsItsSymbol) {
  Fixture f = Make(R"(root ::= <[7]> "{" "}")");
  TriggerWatch w(Triggers({.tokens = {7}}));
  ASSERT_TRUE(w.Observe(*f.vocab, 6, &f.matcher));
  ASSERT_TRUE(w.Observe(*f.vocab, 4, &f.matcher));  // "{" alone is text: no trigger
  EXPECT_FALSE(w.fired());
  ASSERT_TRUE(w.Observe(*f.vocab, 7, &f.matcher));
  EXPECT_TRUE(w.fired());
  EXPECT_TRUE(f.vocab->AcceptToken(&f.matcher, 4));
}

TEST(TriggerWatchTest, StartWordsOnlyAtTheStartAfterBlanks) {
  {
    Fixture f = Make(R"(root ::= "{\"n\"" "}")");
    TriggerWatch w(Triggers({.start_words = {"{\"n\""}}));
    ASSERT_TRUE(w.Observe(*f.vocab, 8, &f.matcher));  // " "
    ASSERT_TRUE(w.Observe(*f.vocab, 4, &f.matcher));  // "{": may still become the word
    EXPECT_FALSE(w.fired());
    std::optional<TriggerWatch::Fire> fire = w.Check(9, "{\"n\"");
    EXPECT_FALSE(fire.has_value());  // "{{\"n\"" is not the word
  }
  {
    Fixture f = Make(R"(root ::= "{\"n\"" "}")");
    TriggerWatch w(Triggers({.start_words = {"{\"n\""}}));
    ASSERT_TRUE(w.Observe(*f.vocab, 8, &f.matcher));
    ASSERT_TRUE(w.Observe(*f.vocab, 9, &f.matcher));
    EXPECT_TRUE(w.fired());
    EXPECT_TRUE(f.vocab->AcceptToken(&f.matcher, 5));
    EXPECT_TRUE(f.matcher.IsComplete());
  }
  {
    Fixture f = Make(R"(root ::= "{\"n\"" "}")");
    TriggerWatch w(Triggers({.start_words = {"{\"n\""}}));
    ASSERT_TRUE(w.Observe(*f.vocab, 6, &f.matcher));  // "hi" first: never again
    ASSERT_TRUE(w.Observe(*f.vocab, 9, &f.matcher));
    EXPECT_FALSE(w.fired());
  }
}

}  // namespace
}  // namespace gannet::grammar
