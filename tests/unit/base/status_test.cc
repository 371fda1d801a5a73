#include "base/status.h"

#include <gtest/gtest.h>

#include <fstream>
#include <memory>

#include "base/mmap_file.h"

namespace gannet {
namespace {

Result<int> Half(int x) {
  if (x % 2 != 0) return Status::InvalidArgument(std::to_string(x) + " is odd");
  return x / 2;
}

Result<int> Quarter(int x) {
  GANNET_ASSIGN_OR_RETURN(int h, Half(x));
  GANNET_ASSIGN_OR_RETURN(int q, Half(h));
  return q;
}

TEST(StatusTest, OkAndErrors) {
  EXPECT_TRUE(Status::Ok().ok());
  Status s = Status::Corrupt("bad bytes");
  EXPECT_FALSE(s.ok());
  EXPECT_EQ(s.code(), StatusCode::kCorrupt);
  EXPECT_EQ(s.ToString(), "corrupt: bad bytes");
  EXPECT_EQ(s.WithContext("file.gguf").message(), "file.gguf: bad bytes");
}

TEST(StatusTest, ResultPropagates) {
  EXPECT_EQ(*Quarter(8), 2);
  Result<int> r = Quarter(6);
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().message(), "3 is odd");
  Result<std::unique_ptr<int>> p = std::make_unique<int>(5);
  EXPECT_EQ(**p, 5);
}

TEST(StatusTest, ResultFromOkStatusIsAnError) {
  Result<int> r = Status::Ok();
  EXPECT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), StatusCode::kInternal);
}

TEST(MmapFileTest, MapsAndReportsErrors) {
  const std::string path = ::testing::TempDir() + "/mmap_test.bin";
  {
    std::ofstream f(path, std::ios::binary);
    f << "hello";
  }
  Result<MmapFile> m = MmapFile::Open(path);
  ASSERT_TRUE(m.ok()) << m.status().ToString();
  ASSERT_EQ(m->size(), 5u);
  EXPECT_EQ(std::string(reinterpret_cast<const char*>(m->data()), 5), "hello");
  MmapFile moved = std::move(m).value();
  EXPECT_EQ(moved.size(), 5u);

  Result<MmapFile> missing = MmapFile::Open(path + ".does-not-exist");
  ASSERT_FALSE(missing.ok());
  EXPECT_EQ(missing.status().code(), StatusCode::kIoError);
  EXPECT_NE(missing.status().message().find("cannot open"), std::string::npos);

  Result<MmapFile> dir = MmapFile::Open(::testing::TempDir());
  EXPECT_FALSE(dir.ok());
}

}  // namespace
}  // namespace gannet
