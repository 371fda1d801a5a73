#include "engine/output_processor.h"

namespace gannet::engine {

TokenOutput OutputProcessor::Process(int32_t token) {
  TokenOutput out;
  out.text_offset = decoded_bytes_;
  if (stop_at_eog_ && tokenizer_->IsEndOfGeneration(token)) {
    out.emitted = false;
    out.finished = finished_ = true;
    out.text = stop_.Push(decoder_.Finish());
    out.text += stop_.Flush();
    return out;
  }
  const std::string piece = decoder_.Feed(token);
  decoded_bytes_ += static_cast<int64_t>(piece.size());
  out.text = stop_.Push(piece);
  out.finished = finished_ = stop_.matched();
  return out;
}

std::string OutputProcessor::Finish() {
  if (stop_.matched()) return {};
  std::string out = stop_.Push(decoder_.Finish());
  out += stop_.Flush();
  return out;
}

}  // namespace gannet::engine
