// Prometheus text of the serving metrics: gauges from the engine's stats, cumulative histogram
// buckets, request counters by status.
#include <gtest/gtest.h>

#include "http/http_server.h"
#include "server/metrics.h"

namespace gannet::server {
namespace {

bool Has(const std::string& text, const std::string& line) {
  return text.find(line + "\n") != std::string::npos;
}

TEST(OpenAiMetricsTest, GaugesCountersAndHistograms) {
  ServerMetrics m;
  m.ObserveTimeToFirstToken(0.004);
  m.ObserveTimeToFirstToken(0.2);
  m.ObserveTimeToFirstToken(1000);  // past the last bound: only +Inf
  m.CountRequest(200);
  m.CountRequest(200);
  m.CountRequest(429);
  engine::EngineStats st{.running = 3,
                         .waiting = 2,
                         .kv_blocks_used = 10,
                         .kv_blocks_total = 100,
                         .prefix_hit_tokens = 64,
                         .prompt_tokens_total = 500,
                         .generated_tokens_total = 70,
                         .steps = 41,
                         .spec_steps = 9,
                         .spec_draft_tokens = 30,
                         .spec_accepted_tokens = 21,
                         .spec_fixed_seconds = 0.008,
                         .spec_row_seconds = 0.0025,
                         .spec_draft_token_seconds = 0.00125,
                         .spec_threshold = 0.75,
                         .spec_draft_seconds_total = 1.5};
  const std::string text = m.Render(st);
  EXPECT_TRUE(Has(text, "gannet_spec_step_fixed_seconds 0.008"));
  EXPECT_TRUE(Has(text, "gannet_spec_step_row_seconds 0.0025"));
  EXPECT_TRUE(Has(text, "gannet_spec_draft_token_seconds 0.00125"));
  EXPECT_TRUE(Has(text, "gannet_spec_threshold 0.75"));
  EXPECT_TRUE(Has(text, "gannet_spec_draft_seconds_total 1.5"));
  EXPECT_TRUE(Has(text, "gannet_engine_steps_total 41"));
  EXPECT_TRUE(Has(text, "gannet_spec_verify_steps_total 9"));
  EXPECT_TRUE(Has(text, "gannet_spec_draft_tokens_total 30"));
  EXPECT_TRUE(Has(text, "gannet_spec_accepted_tokens_total 21"));
  EXPECT_TRUE(Has(text, "gannet_requests_running 3"));
  EXPECT_TRUE(Has(text, "gannet_requests_waiting 2"));
  EXPECT_TRUE(Has(text, "gannet_kv_blocks_used 10"));
  EXPECT_TRUE(Has(text, "gannet_kv_blocks_total 100"));
  EXPECT_TRUE(Has(text, "gannet_prefix_cache_hit_tokens_total 64"));
  EXPECT_TRUE(Has(text, "gannet_prompt_tokens_total 500"));
  EXPECT_TRUE(Has(text, "gannet_generation_tokens_total 70"));
  EXPECT_TRUE(Has(text, "# TYPE gannet_time_to_first_token_seconds histogram"));
  EXPECT_TRUE(Has(text, "gannet_time_to_first_token_seconds_bucket{le=\"0.001\"} 0"));
  EXPECT_TRUE(Has(text, "gannet_time_to_first_token_seconds_bucket{le=\"0.005\"} 1"));
  EXPECT_TRUE(
      Has(text, "gannet_time_to_first_token_seconds_bucket{le=\"0.2\"} 2"));  // le is inclusive
  EXPECT_TRUE(Has(text, "gannet_time_to_first_token_seconds_bucket{le=\"160\"} 2"));
  EXPECT_TRUE(Has(text, "gannet_time_to_first_token_seconds_bucket{le=\"+Inf\"} 3"));
  EXPECT_TRUE(Has(text, "gannet_time_to_first_token_seconds_count 3"));
  EXPECT_TRUE(Has(text, "gannet_inter_token_latency_seconds_count 0"));
  EXPECT_TRUE(Has(text, "gannet_e2e_request_latency_seconds_count 0"));
  EXPECT_TRUE(Has(text, "gannet_requests_total{status=\"200\"} 2"));
  EXPECT_TRUE(Has(text, "gannet_requests_total{status=\"429\"} 1"));
}

// The access-log line carries what the handler noted (token counts), after the HTTP fields.
TEST(OpenAiMetricsTest, RequestLogCarriesTheHandlersNote) {
  http::RequestLog log{.method = "POST",
                       .path = "/v1/completions",
                       .status = 200,
                       .bytes = 10,
                       .latency = std::chrono::microseconds(1500),
                       .note = "prompt=3 completion=4"};
  EXPECT_EQ(http::FormatRequestLog(log),
            "POST /v1/completions 200 10B 1.5ms prompt=3 completion=4");
  log.completed = false;
  log.note.clear();
  EXPECT_EQ(http::FormatRequestLog(log), "POST /v1/completions 200 10B 1.5ms aborted");
}

}  // namespace
}  // namespace gannet::server
