// Serving metrics in Prometheus' text exposition format (version 0.0.4): request counters by
// status, latency histograms, and the engine's gauges and counters (engine::EngineStats).
//
// Thread-safety: every method may be called from any thread.
#pragma once

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "engine/engine.h"

namespace gannet::server {

// A cumulative histogram with fixed upper bounds (seconds).
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);
  // "# TYPE" line and the _bucket / _sum / _count samples of metric `name`.
  void Render(const std::string& name, const std::string& help, std::string* out) const;

 private:
  std::vector<double> bounds_;
  mutable std::mutex mu_;
  std::vector<uint64_t> counts_;  // per bucket (not cumulative), + the +Inf bucket
  double sum_ = 0;
  uint64_t count_ = 0;
};

class ServerMetrics {
 public:
  ServerMetrics();

  void ObserveTimeToFirstToken(double seconds) { ttft_.Observe(seconds); }
  void ObserveInterTokenLatency(double seconds) { itl_.Observe(seconds); }
  void ObserveEndToEnd(double seconds) { e2e_.Observe(seconds); }
  // One finished HTTP request of the OpenAI endpoints, by response status.
  void CountRequest(int status);

  std::string Render(const engine::EngineStats& stats) const;

 private:
  Histogram ttft_, itl_, e2e_;
  mutable std::mutex mu_;
  std::map<int, uint64_t> requests_by_status_;
};

}  // namespace gannet::server
