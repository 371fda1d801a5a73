#include "hub/sha256.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <fstream>

namespace gannet::hub {
namespace {

std::string Hash(std::string_view s) {
  Sha256 h;
  h.Update(s);
  return h.HexDigest();
}

// FIPS 180-4 / NIST CAVS example vectors.
TEST(Sha256Test, KnownVectors) {
  EXPECT_EQ(Hash(""), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(Hash("abc"), "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(Hash("abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"),
            "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1");
  Sha256 million;
  const std::string chunk(1000, 'a');
  for (int i = 0; i < 1000; ++i) million.Update(chunk);
  EXPECT_EQ(million.HexDigest(),
            "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0");
}

TEST(Sha256Test, PiecesEqualWhole) {
  std::string data;
  for (int i = 0; i < 1000; ++i) data += static_cast<char>(i * 131 % 251);
  for (size_t cut : {0, 1, 55, 56, 63, 64, 65, 500}) {
    Sha256 h;
    h.Update(std::string_view(data).substr(0, cut));
    h.Update(std::string_view(data).substr(cut));
    EXPECT_EQ(h.HexDigest(), Hash(data)) << cut;
  }
}

TEST(Sha256Test, HashFilePrefix) {
  const std::filesystem::path p =
      std::filesystem::temp_directory_path() / ("gannet_sha_" + std::to_string(getpid()));
  std::ofstream(p) << "abcdef";
  Sha256 h;
  ASSERT_TRUE(HashFile(p, 3, h).ok());
  EXPECT_EQ(h.HexDigest(), Hash("abc"));
  Sha256 h2;
  EXPECT_EQ(HashFile(p, 10, h2).code(), StatusCode::kIoError);
  std::filesystem::remove(p);
  Sha256 h3;
  EXPECT_EQ(HashFile(p, -1, h3).code(), StatusCode::kIoError);
  EXPECT_TRUE(IsSha256Hex(std::string(64, 'F')));
  EXPECT_FALSE(IsSha256Hex(std::string(63, 'f')));
  EXPECT_FALSE(IsSha256Hex(std::string(63, 'f') + "g"));
}

}  // namespace
}  // namespace gannet::hub
