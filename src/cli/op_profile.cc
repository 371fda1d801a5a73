#include "cli/op_profile.h"

#include <algorithm>
#include <cstdio>
#include <optional>

#include "tensor/dtype.h"

namespace gannet::cli {
namespace {

std::string Describe(const graph::WeightRef& w) {
  return std::string(DTypeName(w.type)) + " " + std::to_string(w.rows) + "x" +
         std::to_string(w.cols);
}

// A matmul node's multiply-adds: [rows, cols] outputs of weight.cols inputs each, twice for a GLU
// pair (gate and up); 0 for other ops.
int64_t MultiplyAdds(const graph::Node& node) {
  if (node.op != graph::OpKind::kMatMul && node.op != graph::OpKind::kMatMulGlu) return 0;
  const int64_t macs = node.rows * node.cols * node.weight.cols;
  return node.op == graph::OpKind::kMatMulGlu ? 2 * macs : macs;
}

int64_t WeightBytes(const graph::WeightRef& w) {
  const std::optional<int64_t> rb = RowBytes(w.type, w.cols);
  return rb ? *rb * w.rows : 0;
}

}  // namespace

graph::NodeObserver OpProfile::Observer() {
  return [this](const graph::Node& node, const float*) {
    const auto now = Clock::now();
    const double s = std::chrono::duration<double>(now - last_).count();
    last_ = now;
    in_pass_ = true;
    if (node.computed_by >= 0) {  // a group member: computed (and timed) with its leader
      if (group_ != nullptr) {
        group_->bytes += WeightBytes(node.weight);
        group_->macs += MultiplyAdds(node);
        group_->seconds += s;
      }
      return;
    }
    std::string key = graph::OpName(node.op);
    int64_t bytes = 0;
    if (node.op == graph::OpKind::kMatMul || node.op == graph::OpKind::kMatMulGlu) {
      key.append(" ").append(Describe(node.weight));
      bytes = WeightBytes(node.weight);
      if (node.op == graph::OpKind::kMatMulGlu) {
        key.append(" + ").append(Describe(node.weight2));
        bytes += WeightBytes(node.weight2);
      }
      if (!node.siblings.empty()) {
        key.append(" + ").append(std::to_string(node.siblings.size())).append(" grouped");
      }
    }
    if (node.pre_norm) key += " (norm fused)";
    Entry& e = entries_[key];
    e.seconds += s;
    e.calls += 1;
    e.bytes += bytes;
    e.macs += MultiplyAdds(node);
    group_ = node.siblings.empty() ? nullptr : &e;
  };
}

void OpProfile::Start(bool count_gap) {
  const auto now = Clock::now();
  if (count_gap && in_pass_) {
    Entry& e = entries_[kOutsideGraph];
    e.seconds += std::chrono::duration<double>(now - last_).count();
    e.calls += 1;
  }
  in_pass_ = false;
  last_ = now;
}

std::vector<OpProfile::Row> OpProfile::Rows(int64_t n_units, int64_t n_passes) const {
  double total = 0;
  for (const auto& [k, e] : entries_) total += e.seconds;
  std::vector<Row> rows;
  for (const auto& [k, e] : entries_) {
    rows.push_back(Row{
        .op = k,
        .calls_per_pass = static_cast<double>(e.calls) / static_cast<double>(n_passes),
        .ms_per_unit = 1e3 * e.seconds / static_cast<double>(n_units),
        .share = total > 0 ? e.seconds / total : 0,
        .weight_gbps =
            e.bytes > 0 && e.seconds > 0 ? static_cast<double>(e.bytes) / e.seconds / 1e9 : 0,
        .gmacs = e.macs > 0 && e.seconds > 0 ? static_cast<double>(e.macs) / e.seconds / 1e9 : 0});
  }
  std::sort(rows.begin(), rows.end(),
            [](const Row& a, const Row& b) { return a.ms_per_unit > b.ms_per_unit; });
  return rows;
}

void OpProfile::Print(const char* what, int64_t n_units, int64_t n_passes, const char* unit) const {
  const std::vector<Row> rows = Rows(n_units, n_passes);
  double ms = 0;
  for (const Row& r : rows) ms += r.ms_per_unit;
  std::printf(
      "\n%s profile (%lld %ss in %lld passes, %.3f ms per %s; an op's time includes waiting for "
      "its slowest thread)\n",
      what, static_cast<long long>(n_units), unit, static_cast<long long>(n_passes), ms, unit);
  std::printf(
      "| op | calls/pass | ms/%s | share | GB/s (weights) | G multiply-adds/s |\n"
      "|---|---|---|---|---|---|\n",
      unit);
  for (const Row& r : rows) {
    std::printf("| %s | %.0f | %.3f | %.1f%% |", r.op.c_str(), r.calls_per_pass, r.ms_per_unit,
                100 * r.share);
    if (r.weight_gbps > 0) {
      std::printf(" %.2f | %.2f |\n", r.weight_gbps, r.gmacs);
    } else {
      std::printf(" | |\n");
    }
  }
}

nlohmann::json OpProfile::Json(int64_t n_units, int64_t n_passes, const char* unit) const {
  const std::string ms_key = std::string("ms_per_") + unit;
  nlohmann::json a = nlohmann::json::array();
  for (const Row& r : Rows(n_units, n_passes)) {
    a.push_back({{"op", r.op},
                 {"calls_per_pass", r.calls_per_pass},
                 {ms_key, r.ms_per_unit},
                 {"share", r.share},
                 {"weight_gbps", r.weight_gbps},
                 {"gmacs", r.gmacs}});
  }
  return a;
}

}  // namespace gannet::cli
