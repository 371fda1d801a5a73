// The progress display of a download on a terminal (one line redrawn: bar, bytes, rate, ETA) or
// in a log (a plain line at every tenth of the file). Thread-safety: one thread.
#pragma once

#include <chrono>
#include <cstdint>
#include <cstdio>
#include <string>

namespace gannet::hub {

// "1.5 KiB", "253.1 MiB", "3.02 GiB".
std::string FormatBytes(int64_t n);
// "42 s", "3 min 05 s", "1 h 02 min"; "?" for a negative value.
std::string FormatDuration(int64_t seconds);

// The text of one progress line. rate in bytes per second (0: unknown), total < 0: unknown.
std::string ProgressLine(const std::string& label, int64_t done, int64_t total, double rate,
                         bool with_bar);

class ProgressBar {
 public:
  // `out` is borrowed; `tty` chooses the redrawn line over plain lines. `start` is what the file
  // already had (a resumed download): the rate counts only the bytes of this run.
  ProgressBar(FILE* out, bool tty, std::string label, int64_t total, int64_t start);
  void Update(int64_t done);
  // Ends the line (the terminal form) and prints the final size, time and rate.
  void Finish(int64_t done);
  // Ends a redrawn line that Finish will not end (the transfer failed).
  void EndLine();

 private:
  using Clock = std::chrono::steady_clock;
  double Rate(int64_t done) const;

  FILE* out_;
  bool tty_;
  std::string label_;
  int64_t total_;
  int64_t start_;
  Clock::time_point t0_ = Clock::now();
  Clock::time_point last_draw_{};
  int last_tenth_ = -1;
};

}  // namespace gannet::hub
