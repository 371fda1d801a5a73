// gannet chat -m FILE: an interactive chat in the terminal on the same Engine the server uses, with
// the model's chat template. Replies stream as they are generated. Line editing and history come
// from GNU readline. Commands: /reset (forget the conversation), /system TEXT (set the system
// prompt and reset), /help. Ctrl-C stops the current answer and keeps the chat; Ctrl-D (an empty
// line's end of file) leaves.
#include <poll.h>
#include <pthread.h>
#include <readline/history.h>
#include <readline/readline.h>
#include <signal.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <ctime>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "chat/prompt.h"
#include "chat/template.h"
#include "cli/commands.h"
#include "engine/engine.h"

namespace gannet::cli {
namespace {

// Set by SIGINT; the generation loop polls it. A flag is all a signal handler may safely touch.
std::atomic<bool> g_interrupted{false};

void OnSigint(int) { g_interrupted.store(true); }

// Readline's input: one byte at a time, as its own rl_getc does, except that a Ctrl-C at the prompt
// drops the line being typed and starts a fresh prompt, as shells do.
int ReadKey(FILE* in) {
  const int fd = fileno(in);
  for (;;) {
    // The flag is checked between short waits: a signal that lands while readline is busy
    // elsewhere (redisplay) is seen within 100 ms instead of at the next key.
    if (g_interrupted.exchange(false)) {
      rl_replace_line("", 0);
      rl_crlf();
      rl_on_new_line();
      rl_redisplay();
    }
    pollfd p{.fd = fd, .events = POLLIN, .revents = 0};
    const int ready = poll(&p, 1, 100);
    if (ready < 0 && errno != EINTR) return EOF;
    if (ready <= 0) continue;
    unsigned char c = 0;
    const ssize_t n = read(fd, &c, 1);
    if (n == 1) return c;
    if (n == 0) return EOF;
    if (errno != EINTR) return EOF;
  }
}

// What the engine's step thread hands to the terminal thread.
struct Reply {
  std::mutex mu;
  std::condition_variable cv;
  std::string pending;  // decoded text not yet printed
  std::string text;     // the whole reply
  bool done = false;
  Status status;
  engine::FinishReason finish = engine::FinishReason::kStop;
};

void PrintWrapped(const std::string& s) {
  std::fwrite(s.data(), 1, s.size(), stdout);
  std::fflush(stdout);
}

}  // namespace

Runner AddChatCommand(CLI::App& app) {
  struct Opts {
    std::string model;
    std::string chat_template;
    std::string system;
    int32_t max_tokens = 1024;
    GenerationFlags gen;
    // On by default: n-gram drafts cost no pass, and the adaptive control drafts only where they
    // pay (never in a batch whose rows cost what a sequence's do).
    SpecFlags spec{.method = "ngram"};
    int threads = 0;
    int64_t ctx = 0;
  };
  auto o = std::make_shared<Opts>();
  CLI::App* sub = app.add_subcommand(
      "chat", "Chat with a model in the terminal (its chat template, streaming)");
  sub->add_option("-m,--model", o->model, "GGUF model file, or a model in the store (gannet list)")
      ->required();
  sub->add_option("--chat-template", o->chat_template,
                  "Jinja chat template file (default: the model's own)");
  sub->add_option("--system", o->system, "System prompt");
  sub->add_option("-n,--max-tokens", o->max_tokens, "Most tokens per answer")
      ->capture_default_str();
  AddGenerationFlags(sub, &o->gen);
  AddSpecFlags(sub, &o->spec);
  sub->add_option("-t,--threads", o->threads, "Threads (default: one per core)");
  sub->add_option("-c,--ctx-size", o->ctx, "Context size (default: min(training context, 4096))");
  return [o] {
    if (o->max_tokens < 1) return ReportError("-n must be at least 1");
    if (o->threads < 0) return ReportError("--threads must not be negative");
    if (Status s = o->gen.Check(); !s.ok()) return ReportError(s);
    if (Status s = ResolveModelFlag(&o->model); !s.ok()) return ReportError(s);
    // SIGINT must interrupt this thread's read, so no other thread may take it: block it before
    // the engine starts its threads (they inherit the mask) and unblock it here afterwards.
    sigset_t sigint_set;
    sigemptyset(&sigint_set);
    sigaddset(&sigint_set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigint_set, nullptr);
    Result<std::unique_ptr<engine::ModelRunner>> loaded = engine::ModelRunner::Load(
        o->model, WithKernelEnv({.n_threads = o->threads, .n_ctx = o->ctx}));
    if (!loaded.ok()) return ReportError(loaded.status());
    const Tokenizer& tok = (*loaded)->tokenizer();
    Result<ChatTemplate> tmpl = LoadChatTemplate(o->chat_template, (*loaded)->file());
    if (!tmpl.ok()) return ReportError("chat template: " + tmpl.status().message());
    engine::EngineOptions eo{.max_seqs = 1, .max_queue = 1};
    ApplyEngineEnvironment(&eo);
    if (Status s = o->spec.Apply(**loaded, &eo); !s.ok()) return ReportError(s);
    Result<std::unique_ptr<engine::Engine>> created = engine::Engine::Create(loaded->get(), eo);
    if (!created.ok()) return ReportError(created.status());
    engine::Engine& eng = **created;

    struct sigaction sa {};
    sa.sa_handler = OnSigint;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, nullptr);  // no SA_RESTART: a blocked read returns at once
    pthread_sigmask(SIG_UNBLOCK, &sigint_set, nullptr);
    rl_catch_signals = 0;  // readline leaves SIGINT to us
    // No bracketed-paste escapes around the prompt: a pasted multi-line text is one message anyway.
    rl_variable_bind("enable-bracketed-paste", "off");
    rl_getc_function = ReadKey;

    std::vector<ChatMessage> messages;
    auto reset = [&] {
      messages.clear();
      if (!o->system.empty()) messages.push_back({.role = "system", .content = o->system});
    };
    reset();
    std::fprintf(
        stderr,
        "gannet chat: %s. /reset, /system TEXT, /help; Ctrl-C stops an answer, Ctrl-D leaves.\n",
        o->model.c_str());

    while (true) {
      g_interrupted.store(false);
      char* raw = readline("> ");
      if (raw == nullptr) {  // Ctrl-D
        std::printf("\n");
        break;
      }
      std::string line(raw);
      std::free(raw);
      if (line.empty()) continue;
      add_history(line.c_str());
      if (line == "/reset") {
        reset();
        std::printf("(conversation cleared)\n");
        continue;
      }
      if (line.rfind("/system", 0) == 0 && (line.size() == 7 || line[7] == ' ')) {
        o->system = line.size() > 8 ? line.substr(8) : "";
        reset();
        std::printf("(system prompt set; conversation cleared)\n");
        continue;
      }
      if (line == "/help") {
        std::printf(
            "/reset: forget the conversation; /system TEXT: set the system prompt; Ctrl-C: stop an "
            "answer; Ctrl-D: leave\n");
        continue;
      }
      g_interrupted.store(false);  // a Ctrl-C from before Enter does not stop this answer
      messages.push_back({.role = "user", .content = line});
      Result<std::vector<int32_t>> rendered = RenderChatPrompt(
          *tmpl, tok,
          {.messages = messages, .add_generation_prompt = true, .now = std::time(nullptr)});
      if (!rendered.ok()) {
        messages.pop_back();
        std::fprintf(stderr, "gannet: the chat template failed: %s\n",
                     rendered.status().message().c_str());
        continue;
      }
      std::vector<int32_t> prompt = std::move(rendered).value();
      const int64_t room = eng.context_length() - static_cast<int64_t>(prompt.size());
      if (room < 1) {
        messages.pop_back();
        std::fprintf(
            stderr,
            "gannet: the conversation fills the context (%lld tokens); /reset to start over\n",
            static_cast<long long>(eng.context_length()));
        continue;
      }
      auto reply = std::make_shared<Reply>();
      engine::GenerationRequest req{
          .prompt = std::move(prompt),
          .max_tokens = static_cast<int32_t>(std::min<int64_t>(o->max_tokens, room)),
          .sampling = o->gen.sampling,
          .stop = o->gen.stop,
          .grammar = o->gen.grammar};
      engine::GenerationCallbacks cb{.on_token =
                                         [reply](const engine::TokenEvent& ev) {
                                           std::lock_guard<std::mutex> lock(reply->mu);
                                           reply->pending += ev.text;
                                           reply->cv.notify_one();
                                         },
                                     .on_done =
                                         [reply](const engine::GenerationResult& r) {
                                           std::lock_guard<std::mutex> lock(reply->mu);
                                           if (!r.samples.empty()) {
                                             reply->pending += r.samples[0].tail;
                                             reply->finish = r.samples[0].finish;
                                           }
                                           reply->status = r.status;
                                           reply->done = true;
                                           reply->cv.notify_one();
                                         }};
      Result<engine::RequestId> id = eng.Submit(std::move(req), std::move(cb));
      if (!id.ok()) {
        messages.pop_back();
        std::fprintf(stderr, "gannet: %s\n", id.status().message().c_str());
        continue;
      }
      bool cancelled = false;
      std::unique_lock<std::mutex> lock(reply->mu);
      while (true) {
        reply->cv.wait_for(lock, std::chrono::milliseconds(50),
                           [&] { return reply->done || !reply->pending.empty(); });
        if (!reply->pending.empty()) {
          std::string out = std::move(reply->pending);
          reply->pending.clear();
          reply->text += out;
          lock.unlock();
          PrintWrapped(out);
          lock.lock();
        }
        if (reply->done) break;
        if (g_interrupted.load() && !cancelled) {
          cancelled = true;
          eng.Cancel(*id);
        }
      }
      lock.unlock();
      if (!reply->status.ok()) {
        std::fprintf(stderr, "\ngannet: generation failed: %s\n", reply->status.message().c_str());
        messages.pop_back();
        continue;
      }
      std::printf(cancelled ? " [stopped]\n" : "\n");
      std::fflush(stdout);
      // The answer (or what of it was shown) becomes part of the conversation.
      messages.push_back({.role = "assistant", .content = reply->text});
    }
    eng.Shutdown(std::chrono::milliseconds(0));
    return 0;
  };
}

}  // namespace gannet::cli
