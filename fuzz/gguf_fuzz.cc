// libFuzzer target: the GGUF reader (formats/gguf.h) on arbitrary bytes, then what a loader does
// next with a file that validates: the summary (every metadata value and tensor), the tokenizer
// and the chat template read from it. Seeds: the files of tests/fixtures/gguf.
#include <cstddef>
#include <cstdint>
#include <span>
#include <string>

#include "chat/template.h"
#include "formats/gguf.h"
#include "tokenizer/tokenizer.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  gannet::Result<std::unique_ptr<gannet::GgufFile>> file =
      gannet::GgufFile::FromBytes(std::span<const uint8_t>(data, size), "fuzz.gguf");
  if (!file.ok()) return 0;
  const gannet::GgufFile& f = **file;
  std::string summary = gannet::FormatGgufSummary(f, /*show_all_metadata=*/true);
  if (summary.empty()) __builtin_trap();
  gannet::Result<std::unique_ptr<gannet::Tokenizer>> tok = gannet::Tokenizer::FromGguf(f);
  if (tok.ok()) {
    std::vector<int32_t> ids = (*tok)->Encode("Hello world <s> 123", true, true);
    for (int32_t id : ids) {
      if (id < 0 || id >= (*tok)->n_vocab()) __builtin_trap();
    }
    (void)(*tok)->Decode(ids, true);
  }
  (void)gannet::ChatTemplate::FromGguf(f);
  return 0;
}
