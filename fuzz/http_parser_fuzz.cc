// libFuzzer target: the HTTP/1.1 request parser (http/http_parser.h) on arbitrary bytes, fed in
// pieces whose sizes come from the input, with small limits so that the 413/414/431 paths are
// reached. Checks the parser's contract: it never takes more than it is given, takes nothing once
// complete or failed, and a failure carries a 4xx/5xx status and a message.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string_view>

#include "http/http_parser.h"

namespace {

void Check(bool cond) {
  if (!cond) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  if (size < 1) return 0;
  // First byte: the piece size (1..64; 0 means everything at once).
  const size_t piece = data[0] % 65;
  std::string_view in(reinterpret_cast<const char*>(data + 1), size - 1);
  gannet::http::HttpParser parser(gannet::http::HttpParserLimits{.max_request_line = 256,
                                                                 .max_header_bytes = 1024,
                                                                 .max_headers = 16,
                                                                 .max_body_bytes = 4096});
  size_t pos = 0;
  int requests = 0;
  while (pos < in.size() && requests < 64) {
    const size_t n = piece == 0 ? in.size() - pos : std::min(piece, in.size() - pos);
    const size_t took = parser.Feed(in.substr(pos, n));
    Check(took <= n);
    pos += took;
    switch (parser.state()) {
      case gannet::http::HttpParser::State::kComplete: {
        Check(parser.Feed("GET / HTTP/1.1\r\n") == 0);
        gannet::http::HttpRequest req = parser.TakeRequest();
        Check(!req.method.empty());
        Check(req.body.size() <= 4096);
        ++requests;
        break;
      }
      case gannet::http::HttpParser::State::kError:
        Check(parser.error_status() >= 400 && parser.error_status() < 600);
        Check(!parser.error_message().empty());
        Check(parser.Feed("x") == 0);
        return 0;
      case gannet::http::HttpParser::State::kNeedMore:
        Check(took == n);  // wanting more, it must have taken all it was given
        break;
    }
  }
  return 0;
}
