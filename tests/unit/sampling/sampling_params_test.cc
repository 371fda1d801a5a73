#include "sampling/sampling_params.h"

#include <gtest/gtest.h>

#include <cmath>
#include <functional>
#include <limits>
#include <string>
#include <vector>

namespace gannet {
namespace {

constexpr float kNan = std::numeric_limits<float>::quiet_NaN();
constexpr float kInf = std::numeric_limits<float>::infinity();

TEST(SamplingParamsTest, DefaultsAndEdgesAreValid) {
  EXPECT_TRUE(SamplingParams{}.Validate().ok());
  EXPECT_TRUE((SamplingParams{
      .temperature = 0.0f, .top_k = 0, .top_p = 1.0f, .min_p = 0.0f, .repeat_last_n = 0}
                   .Validate()
                   .ok()));
  EXPECT_TRUE((SamplingParams{.min_p = 1.0f,
                              .repeat_last_n = kMaxRepeatLastN,
                              .presence_penalty = -2.0f,
                              .frequency_penalty = 2.0f,
                              .logit_bias = {{0, -kInf}, {5, 100.0f}}}
                   .Validate(6)
                   .ok()));
}

TEST(SamplingParamsTest, OutOfRangeValuesNameTheField) {
  struct Case {
    std::function<void(SamplingParams&)> mutate;
    std::string field;
  };
  const std::vector<Case> cases = {
      {[](SamplingParams& p) { p.temperature = -0.1f; }, "temperature"},
      {[](SamplingParams& p) { p.temperature = kNan; }, "temperature"},
      {[](SamplingParams& p) { p.temperature = kInf; }, "temperature"},
      {[](SamplingParams& p) { p.top_k = -1; }, "top_k"},
      {[](SamplingParams& p) { p.top_p = 0.0f; }, "top_p"},
      {[](SamplingParams& p) { p.top_p = 1.01f; }, "top_p"},
      {[](SamplingParams& p) { p.top_p = kNan; }, "top_p"},
      {[](SamplingParams& p) { p.min_p = -0.01f; }, "min_p"},
      {[](SamplingParams& p) { p.min_p = 1.5f; }, "min_p"},
      {[](SamplingParams& p) { p.min_p = kNan; }, "min_p"},
      {[](SamplingParams& p) { p.repeat_penalty = 0.0f; }, "repeat_penalty"},
      {[](SamplingParams& p) { p.repeat_penalty = -1.0f; }, "repeat_penalty"},
      {[](SamplingParams& p) { p.repeat_penalty = kNan; }, "repeat_penalty"},
      {[](SamplingParams& p) { p.repeat_last_n = -1; }, "repeat_last_n"},
      {[](SamplingParams& p) { p.repeat_last_n = kMaxRepeatLastN + 1; }, "repeat_last_n"},
      {[](SamplingParams& p) { p.presence_penalty = kNan; }, "presence_penalty"},
      {[](SamplingParams& p) { p.frequency_penalty = -kInf; }, "frequency_penalty"},
      {[](SamplingParams& p) {
         p.logit_bias = {{-3, 1.0f}};
       },
       "logit_bias"},
      {[](SamplingParams& p) {
         p.logit_bias = {{3, kNan}};
       },
       "logit_bias"},
      {[](SamplingParams& p) {
         p.logit_bias = {{3, kInf}};
       },
       "logit_bias"},
  };
  for (const Case& c : cases) {
    SamplingParams params;
    c.mutate(params);
    const Status s = params.Validate();
    EXPECT_EQ(s.code(), StatusCode::kInvalidArgument) << c.field;
    EXPECT_EQ(s.message().rfind(c.field, 0), 0u) << "message: " << s.message();
  }
}

TEST(SamplingParamsTest, MessageShowsTheValue) {
  const Status s = SamplingParams{.top_p = 1.5f}.Validate();
  EXPECT_EQ(s.message(), "top_p must be in (0, 1] (1 = off) (got 1.5)");
}

TEST(SamplingParamsTest, BiasIdsCheckedAgainstVocabulary) {
  const SamplingParams params{.logit_bias = {{9, 1.0f}}};
  EXPECT_TRUE(params.Validate().ok());
  EXPECT_TRUE(params.Validate(10).ok());
  const Status s = params.Validate(9);
  EXPECT_EQ(s.code(), StatusCode::kInvalidArgument);
  EXPECT_EQ(s.message(), "logit_bias token id 9 is outside the vocabulary of 9 tokens");
}

}  // namespace
}  // namespace gannet
