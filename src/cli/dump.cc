// gannet dump -m FILE -p TEXT -o DIR: runs the prompt through the model once and writes every
// graph node's output (name, layer, shape in manifest.json; values as raw little-endian f32), so
// intermediate tensors can be diffed against another implementation (tools/numpy_reference.py).
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <nlohmann/json.hpp>

#include "cli/commands.h"
#include "engine/model_runner.h"

namespace gannet::cli {

Runner AddDumpCommand(CLI::App& app) {
  struct Opts {
    std::string model, prompt, out_dir;
    std::string filter;
    int threads = 0;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "dump", "Write every intermediate tensor of one forward pass over a prompt");
  sub->add_option("-m,--model", o->model, "GGUF model file")->required();
  sub->add_option("-p,--prompt", o->prompt, "Prompt text (BOS added per the model's metadata)")
      ->required();
  sub->add_option("-o,--out", o->out_dir, "Output folder (created)")->required();
  sub->add_option("--filter", o->filter, "Only nodes whose name contains this text");
  sub->add_option("-t,--threads", o->threads, "Threads (default: one per core)");
  return [o] {
    std::error_code ec;
    std::filesystem::create_directories(o->out_dir, ec);
    if (ec) return ReportError("cannot create '" + o->out_dir + "': " + ec.message());
    // Unfused, so that every tensor the model's graph names exists.
    Result<std::unique_ptr<engine::ModelRunner>> loaded = engine::ModelRunner::Load(
        o->model, WithKernelEnv({.n_threads = o->threads, .fuse_graph = false}));
    if (!loaded.ok()) return ReportError(loaded.status());
    engine::ModelRunner& eng = **loaded;
    std::vector<int32_t> ids = eng.tokenizer().Encode(o->prompt, true, true);
    if (ids.empty()) return ReportError("the prompt is empty");

    nlohmann::json manifest = nlohmann::json::array();
    Status write_error;
    int index = 0;
    graph::NodeObserver observer = [&](const graph::Node& node, const float* data) {
      if (!o->filter.empty() && node.name.find(o->filter) == std::string::npos) return;
      char file[64];
      std::snprintf(file, sizeof file, "%04d.f32", index++);
      std::ofstream f(std::filesystem::path(o->out_dir) / file, std::ios::binary);
      f.write(reinterpret_cast<const char*>(data),
              static_cast<std::streamsize>(node.rows * node.cols * sizeof(float)));
      if (!f && write_error.ok())
        write_error = Status::IoError(std::string("cannot write ") + file);
      manifest.push_back({{"file", file},
                          {"name", node.name},
                          {"layer", node.layer},
                          {"op", graph::OpName(node.op)},
                          {"shape", {node.rows, node.cols}}});
    };
    Result<std::span<const float>> r = eng.Evaluate(ids, 0, /*all_logits=*/true, &observer);
    if (!r.ok()) return ReportError(r.status());
    if (!write_error.ok()) return ReportError(write_error);
    nlohmann::json doc = {{"model", o->model}, {"tokens", ids}, {"tensors", manifest}};
    std::ofstream(std::filesystem::path(o->out_dir) / "manifest.json") << doc.dump(1) << "\n";
    std::printf("wrote %zu tensors for %zu tokens to %s\n", manifest.size(), ids.size(),
                o->out_dir.c_str());
    return 0;
  };
}

}  // namespace gannet::cli
