#include "server/metrics.h"

#include <cstdio>

namespace gannet::server {
namespace {

std::string FormatDouble(double v) {
  char buf[64];
  std::snprintf(buf, sizeof buf, "%.9g", v);
  return buf;
}

void Gauge(const char* name, const char* help, const char* type, int64_t value, std::string* out) {
  *out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
          name + " " + std::to_string(value) + "\n";
}

void GaugeReal(const char* name, const char* help, const char* type, double value,
               std::string* out) {
  *out += std::string("# HELP ") + name + " " + help + "\n# TYPE " + name + " " + type + "\n" +
          name + " " + FormatDouble(value) + "\n";
}

std::vector<double> LatencyBounds() {
  return {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.075, 0.1,  0.15, 0.2,  0.3,
          0.5,   0.75,   1.0,   2.5,  5.0,   7.5,  10.0,  20.0, 40.0, 80.0, 160.0};
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), counts_(bounds_.size() + 1, 0) {}

void Histogram::Observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  std::lock_guard<std::mutex> lock(mu_);
  ++counts_[i];
  sum_ += value;
  ++count_;
}

void Histogram::Render(const std::string& name, const std::string& help, std::string* out) const {
  std::lock_guard<std::mutex> lock(mu_);
  *out += "# HELP " + name + " " + help + "\n# TYPE " + name + " histogram\n";
  uint64_t cumulative = 0;
  for (size_t i = 0; i < bounds_.size(); ++i) {
    cumulative += counts_[i];
    *out += name + "_bucket{le=\"" + FormatDouble(bounds_[i]) + "\"} " +
            std::to_string(cumulative) + "\n";
  }
  cumulative += counts_.back();
  *out += name + "_bucket{le=\"+Inf\"} " + std::to_string(cumulative) + "\n";
  *out += name + "_sum " + FormatDouble(sum_) + "\n";
  *out += name + "_count " + std::to_string(count_) + "\n";
}

ServerMetrics::ServerMetrics()
    : ttft_(LatencyBounds()), itl_(LatencyBounds()), e2e_(LatencyBounds()) {}

void ServerMetrics::CountRequest(int status) {
  std::lock_guard<std::mutex> lock(mu_);
  ++requests_by_status_[status];
}

std::string ServerMetrics::Render(const engine::EngineStats& s) const {
  std::string out;
  Gauge("gannet_requests_running", "Requests generating now.", "gauge", s.running, &out);
  Gauge("gannet_requests_waiting", "Requests queued, not yet running.", "gauge", s.waiting, &out);
  Gauge("gannet_kv_blocks_used", "KV cache blocks in use by requests.", "gauge", s.kv_blocks_used,
        &out);
  Gauge("gannet_kv_blocks_total", "KV cache blocks in the pool.", "gauge", s.kv_blocks_total, &out);
  Gauge("gannet_prefix_cache_hit_tokens_total", "Prompt tokens served from the prefix cache.",
        "counter", s.prefix_hit_tokens, &out);
  Gauge("gannet_prefix_cache_query_tokens_total", "Prompt tokens looked up in the prefix cache.",
        "counter", s.prefix_query_tokens, &out);
  Gauge("gannet_prompt_tokens_total", "Prompt tokens processed.", "counter", s.prompt_tokens_total,
        &out);
  Gauge("gannet_generation_tokens_total", "Tokens generated.", "counter", s.generated_tokens_total,
        &out);
  Gauge("gannet_preemptions_total", "Sequences preempted for KV memory.", "counter", s.preemptions,
        &out);
  Gauge("gannet_engine_steps_total", "Forward passes run.", "counter", s.steps, &out);
  Gauge("gannet_spec_verify_steps_total",
        "Speculative decoding: sequence steps that verified a draft tree.", "counter", s.spec_steps,
        &out);
  Gauge("gannet_spec_draft_tokens_total", "Speculative decoding: draft tokens verified.", "counter",
        s.spec_draft_tokens, &out);
  Gauge("gannet_spec_accepted_tokens_total",
        "Speculative decoding: draft tokens accepted (each one a forward pass saved).", "counter",
        s.spec_accepted_tokens, &out);
  GaugeReal("gannet_spec_step_fixed_seconds",
            "Speculative decoding's cost model: a decode step's seconds besides its rows.", "gauge",
            s.spec_fixed_seconds, &out);
  GaugeReal("gannet_spec_step_row_seconds",
            "Speculative decoding's cost model: a decode step's seconds per row computed.", "gauge",
            s.spec_row_seconds, &out);
  GaugeReal("gannet_spec_draft_token_seconds",
            "Speculative decoding's cost model: draft-model seconds per draft token.", "gauge",
            s.spec_draft_token_seconds, &out);
  GaugeReal(
      "gannet_spec_threshold",
      "Speculative decoding: accepted tokens per draft row below which the latest decode step "
      "stopped drafting.",
      "gauge", s.spec_threshold, &out);
  GaugeReal("gannet_spec_draft_seconds_total",
            "Speculative decoding: seconds of draft-model passes.", "counter",
            s.spec_draft_seconds_total, &out);
  ttft_.Render("gannet_time_to_first_token_seconds",
               "Time from request to its first generated token.", &out);
  itl_.Render("gannet_inter_token_latency_seconds", "Time between consecutive tokens of a sample.",
              &out);
  e2e_.Render("gannet_e2e_request_latency_seconds", "Time from request to its last token.", &out);
  out += "# HELP gannet_requests_total Completion requests answered, by HTTP status.\n";
  out += "# TYPE gannet_requests_total counter\n";
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [status, n] : requests_by_status_) {
    out += "gannet_requests_total{status=\"" + std::to_string(status) + "\"} " + std::to_string(n) +
           "\n";
  }
  return out;
}

}  // namespace gannet::server
