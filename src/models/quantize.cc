// QuantizeModel: copies the metadata, then streams every tensor to the output file, converting a
// chunk of rows at a time on a thread pool (the types come from PlanQuantization).
#include "models/quantize.h"

#include <algorithm>
#include <atomic>
#include <cmath>
#include <filesystem>
#include <system_error>

#include "base/thread_pool.h"
#include "formats/gguf_writer.h"
#include "tensor/quant/quant.h"

namespace gannet::models {
namespace {

// About 16 MB of f32 values per chunk: large enough to keep every thread busy, small enough that
// memory does not grow with the model (the output buffer holds one chunk).
constexpr int64_t kChunkElements = int64_t{1} << 22;

// ggml's GGML_QNT_VERSION: the block layouts this file uses.
constexpr uint32_t kQuantizationVersion = 2;

// Converts the rows of one tensor and hands them to the sink chunk by chunk.
class TensorConverter {
 public:
  TensorConverter(ThreadPool& pool, const GgufFile& file, const GgufTensorInfo& in,
                  const TensorPlan& plan)
      : pool_(pool), file_(file), in_(in), plan_(plan) {}

  // `on_chunk(rows_done)` is called after each chunk has been written.
  template <typename OnChunk>
  Status Run(const GgufWriter::ByteSink& sink, OnChunk&& on_chunk) {
    const int64_t ne0 = in_.shape[0];
    const int64_t n_rows = ne0 > 0 ? in_.n_elements / ne0 : 0;
    const int64_t in_row = *RowBytes(plan_.from, ne0);
    const int64_t out_row = *RowBytes(plan_.to, ne0);
    const int64_t chunk_rows = std::max<int64_t>(1, kChunkElements / std::max<int64_t>(ne0, 1));
    // Block types cannot represent inf or nan (the scales would be), so such input is refused;
    // float-to-float conversion passes them through as llama.cpp does.
    const bool check_finite = Traits(plan_.to).is_quantized;
    std::vector<std::vector<float>> row_buf(static_cast<size_t>(pool_.size()),
                                            std::vector<float>(ne0));
    std::vector<uint8_t> out(static_cast<size_t>(std::min(chunk_rows, n_rows) * out_row));
    for (int64_t first = 0; first < n_rows; first += chunk_rows) {
      const int64_t rows = std::min(chunk_rows, n_rows - first);
      std::atomic<int64_t> bad_row{-1};
      std::atomic<bool> failed{false};
      pool_.ParallelFor(rows, [&](int64_t b, int64_t e, int ti) {
        float* buf = row_buf[static_cast<size_t>(ti)].data();
        for (int64_t r = b; r < e; ++r) {
          DequantizeRow(plan_.from, in_.data.data() + (first + r) * in_row, buf, ne0);
          if (check_finite &&
              !std::all_of(buf, buf + ne0, [](float v) { return std::isfinite(v); })) {
            int64_t expected = -1;
            bad_row.compare_exchange_strong(expected, first + r);
            return;
          }
          if (!QuantizeRow(plan_.to, buf, out.data() + r * out_row, ne0)) failed = true;
        }
      });
      if (bad_row >= 0) {
        return Status::InvalidArgument("tensor '" + plan_.name +
                                       "' has an infinite or NaN value in row " +
                                       std::to_string(bad_row.load()) + "; it cannot be quantized");
      }
      if (failed) {
        return Status::Internal("no quantizer for " + std::string(DTypeName(plan_.to)));
      }
      GANNET_RETURN_IF_ERROR(
          sink(std::span<const uint8_t>(out.data(), static_cast<size_t>(rows * out_row))));
      file_.DropPages(in_.data.subspan(static_cast<size_t>(first * in_row),
                                       static_cast<size_t>(rows * in_row)));
      on_chunk(first + rows);
    }
    return Status::Ok();
  }

 private:
  ThreadPool& pool_;
  const GgufFile& file_;
  const GgufTensorInfo& in_;
  const TensorPlan& plan_;
};

Status CopyMetadata(const GgufFile& in, int32_t file_type, GgufWriter& out) {
  for (const auto& [key, value] : in.metadata()) {
    if (key == "split.no" || key == "split.count" || key == "split.tensors.count") continue;
    GANNET_RETURN_IF_ERROR(out.SetValue(key, value));
  }
  out.SetUint32("general.quantization_version", kQuantizationVersion);
  out.SetUint32("general.file_type", static_cast<uint32_t>(file_type));
  return Status::Ok();
}

}  // namespace

Result<QuantizeReport> QuantizeModel(const std::string& input_path, const std::string& output_path,
                                     const QuantizeOptions& options) {
  namespace fs = std::filesystem;
  GANNET_ASSIGN_OR_RETURN(std::unique_ptr<GgufFile> in, GgufFile::Open(input_path));
  std::error_code ec;
  if (fs::exists(output_path, ec) && fs::equivalent(input_path, output_path, ec)) {
    return Status::InvalidArgument("the output file is the input file ('" + output_path + "')");
  }
  GANNET_ASSIGN_OR_RETURN(std::vector<TensorPlan> plan, PlanQuantization(*in, options));

  GgufWriter writer;
  GANNET_RETURN_IF_ERROR(CopyMetadata(*in, options.target.file_type, writer));
  const std::vector<GgufTensorInfo>& tensors = in->tensors();
  int64_t elements_total = 0;
  for (size_t i = 0; i < tensors.size(); ++i) {
    GANNET_RETURN_IF_ERROR(writer.AddTensorInfo(plan[i].name, plan[i].to, plan[i].shape));
    elements_total += tensors[i].n_elements;
  }

  ThreadPool pool(options.n_threads);
  int64_t elements_done = 0;
  auto report = [&](size_t i, int64_t done) {
    if (!options.progress) return;
    QuantizeProgress p{.tensor_index = i,
                       .n_tensors = tensors.size(),
                       .name = plan[i].name,
                       .from = plan[i].from,
                       .to = plan[i].to,
                       .elements_done = done,
                       .elements_total = elements_total};
    options.progress(p);
  };
  const GgufWriter::TensorProducer produce = [&](size_t i,
                                                 const GgufWriter::ByteSink& sink) -> Status {
    const GgufTensorInfo& t = tensors[i];
    if (!plan[i].convert) {
      GANNET_RETURN_IF_ERROR(sink(t.data));
    } else {
      TensorConverter converter(pool, *in, t, plan[i]);
      const int64_t ne0 = t.shape[0];
      GANNET_RETURN_IF_ERROR(converter.Run(
          sink, [&](int64_t rows_done) { report(i, elements_done + rows_done * ne0); }));
    }
    in->DropPages(t.data);
    elements_done += t.n_elements;
    report(i, elements_done);
    return Status::Ok();
  };

  // Written under a temporary name and renamed when complete: an interrupted or failed run never
  // leaves a truncated file under the name the user asked for.
  const std::string tmp_path = output_path + ".part";
  Status st = writer.Write(tmp_path, produce);
  if (st.ok()) {
    fs::rename(tmp_path, output_path, ec);
    if (ec)
      st =
          Status::IoError("cannot rename " + tmp_path + " to " + output_path + ": " + ec.message());
  }
  if (!st.ok()) {
    fs::remove(tmp_path, ec);
    return st;
  }

  QuantizeReport r;
  r.input_bytes = in->file_size();
  r.output_bytes = fs::file_size(output_path, ec);
  for (const TensorPlan& p : plan) r.n_fallback += !p.fallback.empty();
  r.tensors = std::move(plan);
  return r;
}

}  // namespace gannet::models
