// FormatGgufSummary: the text `gannet inspect FILE` prints.
#include <algorithm>
#include <cstdio>
#include <map>

#include "formats/gguf.h"

namespace gannet {
namespace {

// 1234567 -> "1,234,567"
std::string Grouped(uint64_t n) {
  std::string digits = std::to_string(n);
  std::string out;
  for (size_t k = 0; k < digits.size(); ++k) {
    if (k && (digits.size() - k) % 3 == 0) out.push_back(',');
    out.push_back(digits[k]);
  }
  return out;
}

// 1536 -> "1.5 KiB"
std::string Human(uint64_t n) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB", "PiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 5) {
    v /= 1024;
    ++u;
  }
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof(buf), "%llu B", static_cast<unsigned long long>(n));
  } else {
    std::snprintf(buf, sizeof(buf), "%.1f %s", v, kUnits[u]);
  }
  return buf;
}

std::string ShapeText(const std::vector<int64_t>& shape) {
  std::string s;
  for (size_t k = 0; k < shape.size(); ++k) s += (k ? " x " : "") + std::to_string(shape[k]);
  return s;
}

std::string Pad(const std::string& s, size_t width) {
  return s.size() >= width ? s : s + std::string(width - s.size(), ' ');
}

std::string PadLeft(const std::string& s, size_t width) {
  return s.size() >= width ? s : std::string(width - s.size(), ' ') + s;
}

}  // namespace

std::string FormatGgufSummary(const GgufFile& file, bool show_all_metadata) {
  std::string out;
  auto line = [&out](const std::string& label, const std::string& value) {
    out += Pad(label + ":", 14) + value + "\n";
  };
  line("file", file.path());
  line("GGUF version", std::to_string(file.version()));
  line("alignment", std::to_string(file.alignment()));
  line("tensors", std::to_string(file.tensors().size()));
  line("metadata", std::to_string(file.metadata().size()) + " keys");
  char hex[32];
  std::snprintf(hex, sizeof(hex), "0x%llx", static_cast<unsigned long long>(file.data_offset()));
  line("data offset", Grouped(file.data_offset()) + " (" + hex + ")");
  line("file size", Grouped(file.file_size()) + " bytes (" + Human(file.file_size()) + ")");

  out += "\nmetadata:\n";
  const size_t max_elems = show_all_metadata ? SIZE_MAX : 8;
  const size_t max_string = show_all_metadata ? 0 : 120;
  for (const auto& [key, value] : file.metadata()) {
    out += "  " + key + " = " + value.ToString(max_elems, max_string) + "\n";
  }

  const std::vector<GgufTensorInfo>& tensors = file.tensors();
  out += "\ntensors:\n";
  std::vector<std::vector<std::string>> rows;
  rows.push_back({"#", "name", "type", "shape", "bytes", "size"});
  struct TypeTotal {
    uint64_t count = 0, bytes = 0;
  };
  std::map<std::string, TypeTotal> by_type;
  uint64_t params = 0, total_bytes = 0;
  for (size_t k = 0; k < tensors.size(); ++k) {
    const GgufTensorInfo& t = tensors[k];
    const std::string type(DTypeName(t.type));
    rows.push_back({std::to_string(k), t.name, type, ShapeText(t.shape), Grouped(t.n_bytes),
                    Human(t.n_bytes)});
    params += t.n_elements;
    total_bytes += t.n_bytes;
    by_type[type].count += 1;
    by_type[type].bytes += t.n_bytes;
  }
  std::vector<size_t> width(rows[0].size(), 0);
  for (const auto& r : rows) {
    for (size_t c = 0; c < r.size(); ++c) width[c] = std::max(width[c], r[c].size());
  }
  for (const auto& r : rows) {
    std::string l = "  ";
    for (size_t c = 0; c < r.size(); ++c) {
      // Numbers right-aligned, text left-aligned.
      const bool numeric = c == 0 || c == 4 || c == 5;
      l += numeric ? PadLeft(r[c], width[c]) : Pad(r[c], width[c]);
      if (c + 1 < r.size()) l += "  ";
    }
    while (!l.empty() && l.back() == ' ') l.pop_back();
    out += l + "\n";
  }

  out += "\ntotals:\n";
  out += "  parameters: " + Grouped(params) + "\n";
  out += "  bytes:      " + Grouped(total_bytes) + " (" + Human(total_bytes) + ")\n";
  for (const auto& [type, tt] : by_type) {
    out += "  " + Pad(type + ":", 6) + " " + PadLeft(std::to_string(tt.count), 5) +
           (tt.count == 1 ? " tensor,  " : " tensors, ") + Grouped(tt.bytes) + " bytes (" +
           Human(tt.bytes) + ")\n";
  }
  return out;
}

}  // namespace gannet
