#include "hub/ref.h"

#include <gtest/gtest.h>

namespace gannet::hub {
namespace {

TEST(ParseRefTest, Forms) {
  Result<ModelRef> a = ParseRef("ggml-org/gemma-3-270m-GGUF");
  ASSERT_TRUE(a.ok()) << a.status().message();
  EXPECT_EQ(a->owner, "ggml-org");
  EXPECT_EQ(a->repo, "gemma-3-270m-GGUF");
  EXPECT_EQ(a->quant, "");
  EXPECT_EQ(a->file, "");
  Result<ModelRef> b = ParseRef("unsloth/Qwen3-0.6B-GGUF:q4_k_m");
  ASSERT_TRUE(b.ok());
  EXPECT_EQ(b->repo, "Qwen3-0.6B-GGUF");
  EXPECT_EQ(b->quant, "q4_k_m");
  EXPECT_EQ(b->ToString(), "unsloth/Qwen3-0.6B-GGUF:q4_k_m");
  Result<ModelRef> c = ParseRef("o/r/Q4_K_M/model-00001-of-00002.gguf");
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->file, "Q4_K_M/model-00001-of-00002.gguf");
  EXPECT_EQ(c->repo_id(), "o/r");
}

TEST(ParseRefTest, RejectsWithAReason) {
  struct Case {
    const char* text;
    const char* word;
  };
  for (const Case& c : {Case{"gemma", "not a model reference"}, Case{"/repo", "empty owner"},
                        Case{"owner/", "empty repository"}, Case{"o/r:", "empty quantization"},
                        Case{"o/r:Q4 K", "bad quantization"}, Case{"o w/r", "bad owner"},
                        Case{".hidden/r", "bad owner"}, Case{"o/r/../x.gguf", "bad file path"},
                        Case{"o/r/a//b.gguf", "bad file path"}, Case{"o/r/x.bin", "not a .gguf"},
                        Case{"o/r/dir/", "bad file path"}, Case{"o/r/.gguf", "bad file path"}}) {
    Result<ModelRef> r = ParseRef(c.text);
    ASSERT_FALSE(r.ok()) << c.text;
    EXPECT_EQ(r.status().code(), StatusCode::kInvalidArgument) << c.text;
    EXPECT_NE(r.status().message().find(c.word), std::string::npos)
        << c.text << ": " << r.status().message();
  }
}

TEST(SplitNameTest, Parses) {
  std::optional<SplitName> s = ParseSplitName("Q4/name-00002-of-00003.gguf");
  ASSERT_TRUE(s.has_value());
  EXPECT_EQ(s->stem, "Q4/name");
  EXPECT_EQ(s->index, 2);
  EXPECT_EQ(s->count, 3);
  EXPECT_FALSE(ParseSplitName("name-00004-of-00003.gguf").has_value());
  EXPECT_FALSE(ParseSplitName("name-00000-of-00003.gguf").has_value());
  EXPECT_FALSE(ParseSplitName("name-0001-of-0003.gguf").has_value());
  EXPECT_FALSE(ParseSplitName("name.gguf").has_value());
}

TEST(QuantTest, TagsAreWholeTokens) {
  EXPECT_EQ(QuantOf("gemma-3-270m-it-Q4_K_M.gguf"), "Q4_K_M");
  EXPECT_EQ(QuantOf("llama-2-7b.q5_k_s.gguf"), "Q5_K_S");
  EXPECT_EQ(QuantOf("Qwen2.5-0.5B-Instruct-IQ3_XXS.gguf"), "IQ3_XXS");
  EXPECT_EQ(QuantOf("model-bf16-00001-of-00002.gguf"), "BF16");
  EXPECT_EQ(QuantOf("Q8_0/model-00001-of-00002.gguf"), "Q8_0");
  EXPECT_EQ(QuantOf("Qwen3-0.6B.gguf"), "");  // "Qwen3" is no tag
  EXPECT_TRUE(MatchesQuant("gemma-Q4_K_M.gguf", "q4_k_m"));
  EXPECT_FALSE(MatchesQuant("gemma-Q4_K_M.gguf", "Q4_K"));
  EXPECT_FALSE(MatchesQuant("gemma-Q4_K_M.gguf", "K_M"));
  EXPECT_TRUE(MatchesQuant("Q4_K_M/part-00001-of-00002.gguf", "Q4_K_M"));
}

std::vector<HubFile> Files(std::initializer_list<const char*> paths) {
  std::vector<HubFile> out;
  for (const char* p : paths) out.push_back({.path = p, .size = 10, .sha256 = ""});
  return out;
}

std::vector<std::string> Paths(const Result<std::vector<HubFile>>& r) {
  std::vector<std::string> out;
  for (const HubFile& f : r.value()) out.push_back(f.path);
  return out;
}

TEST(SelectFilesTest, QuantDefaultAndOnlyModel) {
  std::vector<HubFile> files = Files({"m-Q8_0.gguf", "m-Q4_K_M.gguf", "m-F16.gguf"});
  ModelRef ref{.owner = "o", .repo = "r"};
  EXPECT_EQ(Paths(SelectFiles(files, ref)), std::vector<std::string>{"m-Q4_K_M.gguf"});
  ref.quant = "q8_0";
  EXPECT_EQ(Paths(SelectFiles(files, ref)), std::vector<std::string>{"m-Q8_0.gguf"});
  ref.quant = "Q2_K";
  Result<std::vector<HubFile>> none = SelectFiles(files, ref);
  ASSERT_EQ(none.status().code(), StatusCode::kNotFound);
  EXPECT_NE(none.status().message().find("m-F16.gguf"), std::string::npos);
  ref.quant = "";
  EXPECT_EQ(Paths(SelectFiles(Files({"only.gguf"}), ref)), std::vector<std::string>{"only.gguf"});
}

TEST(SelectFilesTest, AmbiguityListsTheCandidates) {
  ModelRef ref{.owner = "o", .repo = "r"};
  Result<std::vector<HubFile>> r = SelectFiles(Files({"a-Q8_0.gguf", "b-Q8_0.gguf"}), ref);
  ASSERT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("a-Q8_0.gguf, b-Q8_0.gguf"), std::string::npos);
  ref.quant = "Q8_0";
  r = SelectFiles(Files({"a-Q8_0.gguf", "b-Q8_0.gguf"}), ref);
  ASSERT_EQ(r.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(r.status().message().find("ambiguous"), std::string::npos);
}

TEST(SelectFilesTest, SplitSetsComeWhole) {
  std::vector<HubFile> files = Files({"Q4_K_M/m-Q4_K_M-00002-of-00002.gguf",
                                      "Q4_K_M/m-Q4_K_M-00001-of-00002.gguf", "m-Q8_0.gguf"});
  ModelRef ref{.owner = "o", .repo = "r", .quant = "Q4_K_M"};
  EXPECT_EQ(Paths(SelectFiles(files, ref)),
            (std::vector<std::string>{"Q4_K_M/m-Q4_K_M-00001-of-00002.gguf",
                                      "Q4_K_M/m-Q4_K_M-00002-of-00002.gguf"}));
  // Naming any part brings every part.
  ref = {.owner = "o", .repo = "r", .file = "Q4_K_M/m-Q4_K_M-00002-of-00002.gguf"};
  EXPECT_EQ(Paths(SelectFiles(files, ref)).size(), 2u);
  // A missing part is an error, not half a model.
  files.erase(files.begin());
  Result<std::vector<HubFile>> r =
      SelectFiles(files, {.owner = "o", .repo = "r", .quant = "Q4_K_M"});
  ASSERT_EQ(r.status().code(), StatusCode::kCorrupt);
  EXPECT_NE(r.status().message().find("lists 1"), std::string::npos);
}

TEST(SelectFilesTest, ByFile) {
  std::vector<HubFile> files = Files({"a.gguf", "b.gguf"});
  EXPECT_EQ(Paths(SelectFiles(files, {.owner = "o", .repo = "r", .file = "b.gguf"})),
            std::vector<std::string>{"b.gguf"});
  Result<std::vector<HubFile>> r =
      SelectFiles(files, {.owner = "o", .repo = "r", .file = "c.gguf"});
  EXPECT_EQ(r.status().code(), StatusCode::kNotFound);
  EXPECT_EQ(SelectFiles({}, {.owner = "o", .repo = "r"}).status().code(), StatusCode::kNotFound);
}

TEST(ParseTreeTest, TakesGgufFilesWithSizesAndDigests) {
  const std::string sha(64, 'A');
  Result<std::vector<HubFile>> r = ParseTree(R"([
    {"type": "directory", "path": "Q4_K_M", "size": 0},
    {"type": "file", "path": "README.md", "size": 12},
    {"type": "file", "path": "small.gguf", "size": 100, "oid": "abc"},
    {"type": "file", "path": "Q4_K_M/big.gguf", "size": 134,
     "lfs": {"oid": ")" + sha + R"(", "size": 5000000000, "pointerSize": 134}}])");
  ASSERT_TRUE(r.ok()) << r.status().message();
  ASSERT_EQ(r->size(), 2u);
  EXPECT_EQ((*r)[0].path, "small.gguf");
  EXPECT_EQ((*r)[0].size, 100);
  EXPECT_EQ((*r)[0].sha256, "");
  EXPECT_EQ((*r)[1].size, 5000000000);
  EXPECT_EQ((*r)[1].sha256, std::string(64, 'a'));
}

TEST(ParseTreeTest, MalformedAnswers) {
  for (const char* bad :
       {"", "{}", "<html>", R"([{"type": "file", "size": 1}])",
        R"([{"type": "file", "path": "a.gguf"}])",
        R"([{"type": "file", "path": "a.gguf", "size": 1, "lfs": {"oid": "12"}}])"}) {
    EXPECT_EQ(ParseTree(bad).status().code(), StatusCode::kCorrupt) << bad;
  }
  // Fields of other types than the hub's are skipped or refused, never thrown on (found by
  // fuzz/hub_fuzz.cc: a "type" that is a number ended the process).
  Result<std::vector<HubFile>> odd = ParseTree(
      R"([{"type": 10, "path": "a.gguf", "size": 1}, {"type": ["file"]}, {"type": null},
          {"type": "file", "path": "b.gguf", "size": "big"}])");
  EXPECT_EQ(odd.status().code(), StatusCode::kCorrupt);  // b.gguf has no usable size
  Result<std::vector<HubFile>> skipped = ParseTree(R"([{"type": 10, "path": "a.gguf"}])");
  ASSERT_TRUE(skipped.ok());
  EXPECT_TRUE(skipped->empty());
}

TEST(CheckRepoPathTest, NothingLeavesTheFolder) {
  EXPECT_TRUE(CheckRepoPath("a/b c/d+e.gguf").ok());
  for (const char* bad : {"", "/a.gguf", "a/../b.gguf", "./a.gguf", "a//b.gguf", "a/", "a\\b.gguf",
                          "a\nb.gguf", ".."}) {
    EXPECT_FALSE(CheckRepoPath(bad).ok()) << bad;
  }
}

}  // namespace
}  // namespace gannet::hub
