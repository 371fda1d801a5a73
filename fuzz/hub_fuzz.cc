// libFuzzer target: what `gannet pull` reads from a hub it does not control and from its users:
// the file list JSON (hub::ParseTree) followed by the choice of files for a reference
// (hub::SelectFiles), references themselves (hub::ParseRef) and split file names
// (hub::ParseSplitName). The first input byte picks the reader; for the file list the rest is the
// JSON and the reference is fixed per second byte. Checks: every listed file ends in .gguf with a
// 64-digit or empty sha256 and a size; a parsed reference prints back to one that parses the same;
// a split name has 1 <= index <= count.
#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "hub/ref.h"

namespace {

void Check(bool ok) {
  if (!ok) __builtin_trap();
}

void FileList(std::string_view json, uint8_t pick) {
  gannet::Result<std::vector<gannet::hub::HubFile>> files = gannet::hub::ParseTree(json);
  if (!files.ok()) return;
  for (const gannet::hub::HubFile& f : *files) {
    Check(f.path.size() >= 5 && f.size >= 0);
    Check(f.sha256.empty() || f.sha256.size() == 64);
  }
  static const char* const kRefs[] = {"o/r", "o/r:Q4_K_M", "o/r:q8_0",
                                      "o/r/dir/m-00001-of-00002.gguf", "o/r/m.gguf"};
  gannet::Result<gannet::hub::ModelRef> ref =
      gannet::hub::ParseRef(kRefs[pick % (sizeof(kRefs) / sizeof(kRefs[0]))]);
  Check(ref.ok());
  gannet::Result<std::vector<gannet::hub::HubFile>> chosen = gannet::hub::SelectFiles(*files, *ref);
  if (chosen.ok()) Check(!chosen->empty());
}

void Reference(std::string_view text) {
  gannet::Result<gannet::hub::ModelRef> ref = gannet::hub::ParseRef(text);
  if (!ref.ok()) return;
  Check(!ref->owner.empty() && !ref->repo.empty());
  if (!ref->file.empty()) Check(gannet::hub::CheckRepoPath(ref->file).ok());
  gannet::Result<gannet::hub::ModelRef> again = gannet::hub::ParseRef(ref->ToString());
  Check(again.ok() && again->ToString() == ref->ToString());
}

void Split(std::string_view path) {
  const std::optional<gannet::hub::SplitName> s = gannet::hub::ParseSplitName(path);
  if (s) Check(s->index >= 1 && s->index <= s->count);
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 2) return 0;
  const std::string_view rest(reinterpret_cast<const char*>(data) + 2, size - 2);
  switch (data[0] % 3) {
    case 0:
      FileList(rest, data[1]);
      break;
    case 1:
      Reference(rest);
      break;
    default:
      Split(rest);
  }
  return 0;
}
