#include "hub/progress.h"

#include <algorithm>

namespace gannet::hub {

std::string FormatBytes(int64_t n) {
  static const char* kUnits[] = {"B", "KiB", "MiB", "GiB", "TiB"};
  double v = static_cast<double>(n);
  int u = 0;
  while (v >= 1024 && u < 4) v /= 1024, ++u;
  char buf[32];
  if (u == 0) {
    std::snprintf(buf, sizeof buf, "%lld B", static_cast<long long>(n));
  } else {
    std::snprintf(buf, sizeof buf, v < 10 ? "%.2f %s" : "%.1f %s", v, kUnits[u]);
  }
  return buf;
}

std::string FormatDuration(int64_t s) {
  if (s < 0) return "?";
  char buf[32];
  if (s < 60) {
    std::snprintf(buf, sizeof buf, "%lld s", static_cast<long long>(s));
  } else if (s < 3600) {
    std::snprintf(buf, sizeof buf, "%lld min %02lld s", static_cast<long long>(s / 60),
                  static_cast<long long>(s % 60));
  } else {
    std::snprintf(buf, sizeof buf, "%lld h %02lld min", static_cast<long long>(s / 3600),
                  static_cast<long long>(s % 3600 / 60));
  }
  return buf;
}

std::string ProgressLine(const std::string& label, int64_t done, int64_t total, double rate,
                         bool with_bar) {
  std::string line = label + " ";
  if (total > 0) {
    const double frac =
        std::clamp(static_cast<double>(done) / static_cast<double>(total), 0.0, 1.0);
    char pct[8];
    std::snprintf(pct, sizeof pct, "%3d%%", static_cast<int>(frac * 100));
    line += pct;
    if (with_bar) {
      constexpr int kWidth = 24;
      const int fill = static_cast<int>(frac * kWidth);
      line += " [" + std::string(fill, '#') + std::string(kWidth - fill, ' ') + "]";
    }
    line += " ";
    line += FormatBytes(done);
    line += " / ";
    line += FormatBytes(total);
  } else {
    line += FormatBytes(done);
  }
  if (rate > 0) {
    line += "  " + FormatBytes(static_cast<int64_t>(rate)) + "/s";
    if (total > 0) {
      line += "  ETA " + FormatDuration(static_cast<int64_t>((total - done) / rate));
    }
  }
  return line;
}

ProgressBar::ProgressBar(FILE* out, bool tty, std::string label, int64_t total, int64_t start)
    : out_(out), tty_(tty), label_(std::move(label)), total_(total), start_(start) {}

double ProgressBar::Rate(int64_t done) const {
  const double s = std::chrono::duration<double>(Clock::now() - t0_).count();
  return s > 0.2 ? static_cast<double>(done - start_) / s : 0.0;
}

void ProgressBar::Update(int64_t done) {
  if (out_ == nullptr) return;
  if (tty_) {
    const Clock::time_point now = Clock::now();
    if (now - last_draw_ < std::chrono::milliseconds(200)) return;
    last_draw_ = now;
    std::fprintf(out_, "\r%s\x1b[K", ProgressLine(label_, done, total_, Rate(done), true).c_str());
    std::fflush(out_);
    return;
  }
  if (total_ <= 0) return;
  const int tenth = static_cast<int>(std::min<int64_t>(10, done * 10 / total_));
  if (tenth == last_tenth_ || tenth == 10) return;
  if (last_tenth_ >= 0 || tenth > 0) {
    std::fprintf(out_, "%s\n", ProgressLine(label_, done, total_, Rate(done), false).c_str());
  }
  last_tenth_ = tenth;
}

void ProgressBar::EndLine() {
  if (out_ != nullptr && tty_ && last_draw_ != Clock::time_point{}) std::fputc('\n', out_);
}

void ProgressBar::Finish(int64_t done) {
  if (out_ == nullptr) return;
  const double s = std::chrono::duration<double>(Clock::now() - t0_).count();
  std::string line =
      label_ + " " + FormatBytes(done) + " in " + FormatDuration(static_cast<int64_t>(s));
  const double rate = Rate(done);
  if (rate > 0) line += " (" + FormatBytes(static_cast<int64_t>(rate)) + "/s)";
  std::fprintf(out_, tty_ ? "\r%s\x1b[K\n" : "%s\n", line.c_str());
  std::fflush(out_);
}

}  // namespace gannet::hub
