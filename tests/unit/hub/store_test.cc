#include "hub/store.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

namespace gannet::hub {
namespace {
namespace fs = std::filesystem;

class StoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("gannet_store_test_" + std::to_string(getpid()) + "_" +
             ::testing::UnitTest::GetInstance()->current_test_info()->name());
    fs::remove_all(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  // Writes the files of a model and its manifest, as a pull leaves them.
  StoredModel Put(const std::string& owner, const std::string& repo,
                  std::vector<std::string> paths) {
    ModelStore store(root_);
    StoredModel m{.owner = owner,
                  .repo = repo,
                  .quant = QuantOf(paths[0]),
                  .dir = store.RepoDir(owner, repo)};
    for (const std::string& p : paths) {
      fs::create_directories((m.dir / p).parent_path());
      std::ofstream(m.dir / p) << "GGUF" << p;
      m.files.push_back({.path = p,
                         .size = static_cast<int64_t>(4 + p.size()),
                         .sha256 = std::string(64, '0'),
                         .url = "http://hub/" + p});
    }
    EXPECT_TRUE(store.Save(m).ok());
    return m;
  }

  fs::path root_;
};

TEST(StoreRootTest, EnvironmentOrder) {
  EXPECT_EQ(StoreRoot({.gannet_models = "/m", .xdg_cache_home = "/x", .home = "/h"}).value(),
            fs::path("/m"));
  EXPECT_EQ(StoreRoot({.xdg_cache_home = "/x", .home = "/h"}).value(),
            fs::path("/x/gannet/models"));
  // XDG paths must be absolute; a relative one is ignored.
  EXPECT_EQ(StoreRoot({.xdg_cache_home = "rel", .home = "/h"}).value(),
            fs::path("/h/.cache/gannet/models"));
  EXPECT_EQ(StoreRoot({}).status().code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, LayoutListAndNames) {
  StoredModel q4 = Put("org", "llm-GGUF", {"llm-Q4_K_M.gguf"});
  Put("org", "llm-GGUF", {"llm-Q8_0.gguf"});
  Put("other", "split", {"Q2_K/s-00001-of-00002.gguf", "Q2_K/s-00002-of-00002.gguf"});
  EXPECT_TRUE(fs::is_regular_file(root_ / "org" / "llm-GGUF" / "llm-Q4_K_M.gguf"));
  EXPECT_TRUE(fs::is_regular_file(root_ / "org" / "llm-GGUF" / "llm-Q4_K_M.gguf.manifest.json"));
  ModelStore store(root_);
  Result<std::vector<StoredModel>> all = store.List();
  ASSERT_TRUE(all.ok());
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ(DisplayName((*all)[0], *all), "org/llm-GGUF:Q4_K_M");
  EXPECT_EQ(DisplayName((*all)[1], *all), "org/llm-GGUF:Q8_0");
  EXPECT_EQ(DisplayName((*all)[2], *all), "other/split:Q2_K");
  EXPECT_EQ((*all)[2].files.size(), 2u);
  EXPECT_TRUE((*all)[2].complete());
  EXPECT_EQ((*all)[0].files[0].url, "http://hub/llm-Q4_K_M.gguf");
  EXPECT_EQ((*all)[0].main_path(), q4.main_path());
}

TEST_F(StoreTest, FindByEveryKindOfName) {
  Put("org", "llm-GGUF", {"llm-Q4_K_M.gguf"});
  Put("org", "llm-GGUF", {"llm-Q8_0.gguf"});
  Put("org", "solo", {"solo-F16.gguf"});
  ModelStore store(root_);
  auto file_of = [&](const char* name) {
    Result<StoredModel> m = store.Find(name);
    return m.ok() ? m->files.front().path : "error: " + m.status().message();
  };
  EXPECT_EQ(file_of("org/llm-GGUF:q8_0"), "llm-Q8_0.gguf");
  EXPECT_EQ(file_of("ORG/LLM-gguf:Q8_0"), "llm-Q8_0.gguf");  // the hub's names ignore case
  EXPECT_EQ(file_of("org/llm-GGUF"), "llm-Q4_K_M.gguf");     // the default quant decides
  EXPECT_EQ(file_of("org/llm-GGUF/llm-Q8_0.gguf"), "llm-Q8_0.gguf");
  EXPECT_EQ(file_of("llm-Q8_0.gguf"), "llm-Q8_0.gguf");
  EXPECT_EQ(file_of("org/solo"), "solo-F16.gguf");
  EXPECT_EQ(store.Find("org/llm-GGUF:Q2_K").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store.Find("nothing.gguf").status().code(), StatusCode::kNotFound);
  EXPECT_EQ(store.Find("./relative/path.gguf").status().code(), StatusCode::kNotFound);
}

TEST_F(StoreTest, AmbiguousNamesAreRefused) {
  Put("a", "r", {"model-Q8_0.gguf"});
  Put("b", "r", {"model-Q8_0.gguf"});
  Put("c", "r", {"x-Q8_0.gguf"});
  Put("c", "r", {"y-Q8_0.gguf"});
  ModelStore store(root_);
  Result<StoredModel> m = store.Find("model-Q8_0.gguf");
  ASSERT_EQ(m.status().code(), StatusCode::kInvalidArgument);
  EXPECT_NE(m.status().message().find("a/r/model-Q8_0.gguf, b/r/model-Q8_0.gguf"),
            std::string::npos);
  EXPECT_EQ(store.Find("c/r:Q8_0").status().code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(store.Find("c/r").status().code(), StatusCode::kInvalidArgument);
  Result<std::vector<StoredModel>> all = store.List();
  EXPECT_EQ(DisplayName((*all)[2], *all), "c/r/x-Q8_0.gguf");
}

TEST_F(StoreTest, RemoveTakesFilesManifestAndEmptyFolders) {
  StoredModel split = Put("o", "r", {"Q2_K/s-00001-of-00002.gguf", "Q2_K/s-00002-of-00002.gguf"});
  Put("o", "r", {"keep-Q8_0.gguf"});
  std::ofstream(split.dir / "Q2_K/s-00002-of-00002.gguf.part") << "partial";
  ModelStore store(root_);
  ASSERT_TRUE(store.Remove(split).ok());
  EXPECT_FALSE(fs::exists(split.dir / "Q2_K"));
  EXPECT_TRUE(fs::exists(split.dir / "keep-Q8_0.gguf"));
  ASSERT_EQ(store.List()->size(), 1u);
  ASSERT_TRUE(store.Remove(store.List()->front()).ok());
  EXPECT_TRUE(fs::exists(root_));
  EXPECT_FALSE(fs::exists(root_ / "o"));
  EXPECT_TRUE(store.List()->empty());
}

TEST_F(StoreTest, BadManifestsAreSkippedAndMissingFilesShow) {
  StoredModel m = Put("o", "r", {"a-Q8_0.gguf"});
  std::ofstream(m.dir / "junk.gguf.manifest.json") << "{not json";
  // A manifest that points outside its folder is not believed.
  fs::create_directories(root_ / "x" / "y");
  std::ofstream(root_ / "x" / "y" / "e.gguf.manifest.json")
      << R"({"owner": "x", "repo": "y", "files": [{"path": "../../o/r/a-Q8_0.gguf", "size": 1}]})";
  // Fields of the wrong type are a bad manifest, not an exception.
  fs::create_directories(root_ / "p" / "q");
  std::ofstream(root_ / "p" / "q" / "f.gguf.manifest.json")
      << R"({"owner": 1, "repo": ["q"], "files": [{"path": "f.gguf", "size": "x", "sha256": 2}]})";
  ModelStore store(root_);
  ASSERT_EQ(store.List()->size(), 1u);
  EXPECT_TRUE(store.List()->front().complete());
  fs::remove(m.main_path());
  EXPECT_FALSE(store.List()->front().complete());
  EXPECT_TRUE(ModelStore(root_ / "absent").List()->empty());
}

}  // namespace
}  // namespace gannet::hub
