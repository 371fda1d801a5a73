#include "http/http_parser.h"

#include <algorithm>
#include <cstring>
#include <optional>

#include "base/status.h"

namespace gannet::http {
namespace {

// tchar of RFC 9110 §5.6.2: the characters of a method or a field name.
bool IsTokenChar(unsigned char c) {
  if (c >= '0' && c <= '9') return true;
  if ((c | 0x20) >= 'a' && (c | 0x20) <= 'z') return true;
  return std::strchr("!#$%&'*+-.^_`|~", c) != nullptr && c != '\0';
}

bool IsToken(std::string_view s) {
  return !s.empty() && std::all_of(s.begin(), s.end(), [](char c) { return IsTokenChar(c); });
}

// field-vchar / SP / HTAB; obs-text (>= 0x80) is allowed as opaque bytes.
bool IsFieldValueChar(unsigned char c) { return c == '\t' || (c >= 0x20 && c != 0x7f); }

std::string_view TrimOws(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

char ToLower(char c) { return (c >= 'A' && c <= 'Z') ? static_cast<char>(c + 32) : c; }

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Methods gannet answers; any other well-formed token is 501 (RFC 9110 §9.1).
bool IsKnownMethod(std::string_view m) {
  for (std::string_view k : {"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"}) {
    if (m == k) return true;
  }
  return false;
}

// name ":" OWS value OWS with a token name and no control byte in the value.
bool IsValidFieldLine(std::string_view line) {
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos || !IsToken(line.substr(0, colon))) return false;
  const std::string_view value = line.substr(colon + 1);
  return std::all_of(value.begin(), value.end(), [](char c) { return IsFieldValueChar(c); });
}

// chunk-ext after the first ';' (RFC 9112 §7.1.1): each ';'-separated extension is a token name,
// optionally "=" and a value (token or quoted string, not inspected further).
bool IsValidChunkExtensions(std::string_view exts) {
  while (true) {
    const size_t semi = exts.find(';');
    const std::string_view ext = exts.substr(0, semi);
    if (!IsToken(TrimOws(ext.substr(0, ext.find('='))))) return false;
    if (semi == std::string_view::npos) return true;
    exts.remove_prefix(semi + 1);
  }
}

// Content-Length (RFC 9110 §8.6): one decimal number; repeated fields or a list are accepted only
// when every member is the same number. Any empty member ("5,", ",5", "5,,5") is malformed.
// Errors: InvalidArgument (malformed), OutOfRange (more than 19 digits).
Result<uint64_t> ParseContentLength(const HttpHeaders& h) {
  std::optional<uint64_t> length;
  for (const auto& [name, value] : h) {
    if (!EqualsIgnoreCase(name, "Content-Length")) continue;
    std::string_view rest = value;
    while (true) {
      const size_t comma = rest.find(',');
      const std::string_view item = TrimOws(rest.substr(0, comma));
      if (item.empty()) return Status::InvalidArgument("malformed Content-Length");
      if (item.size() > 19) return Status::OutOfRange("Content-Length is too large");
      uint64_t n = 0;
      for (char c : item) {
        if (c < '0' || c > '9')
          return Status::InvalidArgument("Content-Length is not a decimal number");
        n = n * 10 + static_cast<uint64_t>(c - '0');
      }
      if (length && *length != n)
        return Status::InvalidArgument("conflicting Content-Length values");
      length = n;
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  if (!length) return Status::InvalidArgument("empty Content-Length");
  return *length;
}

constexpr int kMaxLeadingEmptyLines = 8;
constexpr size_t kMaxChunkSizeLine = 1024;

}  // namespace

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    if (ToLower(a[i]) != ToLower(b[i])) return false;
  }
  return true;
}

const std::string* HttpHeaders::Get(std::string_view name) const {
  for (const auto& [n, v] : fields_) {
    if (EqualsIgnoreCase(n, name)) return &v;
  }
  return nullptr;
}

std::vector<std::string> HttpHeaders::GetList(std::string_view name) const {
  std::vector<std::string> out;
  for (const auto& [n, v] : fields_) {
    if (!EqualsIgnoreCase(n, name)) continue;
    std::string_view rest = v;
    while (true) {
      const size_t comma = rest.find(',');
      std::string_view item = TrimOws(rest.substr(0, comma));
      if (!item.empty()) out.emplace_back(item);
      if (comma == std::string_view::npos) break;
      rest.remove_prefix(comma + 1);
    }
  }
  return out;
}

bool HttpHeaders::HasToken(std::string_view name, std::string_view token) const {
  for (const std::string& item : GetList(name)) {
    if (EqualsIgnoreCase(item, token)) return true;
  }
  return false;
}

size_t HttpHeaders::Count(std::string_view name) const {
  size_t n = 0;
  for (const auto& field : fields_) n += EqualsIgnoreCase(field.first, name) ? 1 : 0;
  return n;
}

HttpParser::State HttpParser::state() const {
  if (phase_ == Phase::kDone) return State::kComplete;
  if (phase_ == Phase::kFailed) return State::kError;
  return State::kNeedMore;
}

bool HttpParser::in_progress() const {
  if (phase_ == Phase::kRequestLine) return !line_.empty() && line_ != "\r";
  return phase_ != Phase::kDone && phase_ != Phase::kFailed;
}

bool HttpParser::body_pending() const {
  switch (phase_) {
    case Phase::kBody:
    case Phase::kChunkSize:
    case Phase::kChunkData:
    case Phase::kChunkDataEnd:
    case Phase::kTrailers:
      return true;
    default:
      return false;
  }
}

void HttpParser::Reset() {
  phase_ = Phase::kRequestLine;
  req_ = HttpRequest();
  line_.clear();
  headers_complete_ = false;
  header_bytes_ = 0;
  body_remaining_ = 0;
  leading_empty_lines_ = 0;
  error_status_ = 0;
  error_message_.clear();
}

HttpRequest HttpParser::TakeRequest() {
  HttpRequest out = std::move(req_);
  Reset();
  return out;
}

void HttpParser::Fail(int status, std::string message) {
  phase_ = Phase::kFailed;
  error_status_ = status;
  error_message_ = std::move(message);
}

size_t HttpParser::HeaderBudgetLeft() const {
  return header_bytes_ >= limits_.max_header_bytes ? 0 : limits_.max_header_bytes - header_bytes_;
}

size_t HttpParser::TakeLine(std::string_view data, size_t limit, bool* have_line, bool* too_long) {
  *have_line = false;
  *too_long = false;
  const void* nl = std::memchr(data.data(), '\n', data.size());
  const size_t piece = nl ? static_cast<const char*>(nl) - data.data() : data.size();
  // A trailing CR (even one whose LF has not arrived yet) may be the CR of the CRLF.
  size_t len = line_.size() + piece;
  if (len > 0 && (piece > 0 ? data[piece - 1] == '\r' : line_.back() == '\r')) --len;
  if (len > limit) {
    *too_long = true;
    return 0;
  }
  line_.append(data.data(), piece);
  if (!nl) return piece;
  if (!line_.empty() && line_.back() == '\r') line_.pop_back();
  *have_line = true;
  return piece + 1;
}

size_t HttpParser::Feed(std::string_view data) {
  size_t used = 0;
  while (used < data.size() && phase_ != Phase::kDone && phase_ != Phase::kFailed) {
    std::string_view rest = data.substr(used);
    bool have_line = false;
    bool too_long = false;
    switch (phase_) {
      case Phase::kRequestLine: {
        const size_t limit = std::min(limits_.max_request_line, limits_.max_header_bytes);
        const size_t n = TakeLine(rest, limit, &have_line, &too_long);
        if (too_long) {
          if (limits_.max_request_line <= limits_.max_header_bytes) {
            Fail(414,
                 "request line longer than " + std::to_string(limits_.max_request_line) + " bytes");
          } else {
            Fail(431, "request header section larger than " +
                          std::to_string(limits_.max_header_bytes) + " bytes");
          }
          return used;
        }
        used += n;
        if (!have_line) break;
        header_bytes_ += line_.size() + 2;
        if (line_.empty()) {
          // RFC 9112 §2.2: a server SHOULD ignore at least one empty line before the request line.
          header_bytes_ -= 2;
          if (++leading_empty_lines_ > kMaxLeadingEmptyLines)
            Fail(400, "empty lines instead of a request line");
          break;
        }
        ParseRequestLine(line_);
        line_.clear();
        if (phase_ != Phase::kFailed) phase_ = Phase::kHeaders;
        break;
      }
      case Phase::kHeaders:
      case Phase::kTrailers: {
        const size_t n = TakeLine(rest, HeaderBudgetLeft(), &have_line, &too_long);
        if (too_long) {
          Fail(431, "request header section larger than " +
                        std::to_string(limits_.max_header_bytes) + " bytes");
          return used;
        }
        used += n;
        if (!have_line) break;
        header_bytes_ += line_.size() + 2;
        if (line_.empty()) {
          if (phase_ == Phase::kHeaders) {
            FinishHeaders();
          } else {
            phase_ = Phase::kDone;
          }
        } else if (phase_ == Phase::kHeaders) {
          ParseHeaderLine(line_);
        } else if (!IsValidFieldLine(line_)) {
          // Trailer fields are read for their syntax and then dropped: nothing in gannet uses them.
          Fail(400, "malformed trailer field");
        }
        line_.clear();
        break;
      }
      case Phase::kBody:
      case Phase::kChunkData: {
        const size_t n = static_cast<size_t>(std::min<uint64_t>(body_remaining_, rest.size()));
        req_.body.append(rest.data(), n);
        used += n;
        body_remaining_ -= n;
        if (body_remaining_ == 0)
          phase_ = phase_ == Phase::kBody ? Phase::kDone : Phase::kChunkDataEnd;
        break;
      }
      case Phase::kChunkSize: {
        const size_t n = TakeLine(rest, kMaxChunkSizeLine, &have_line, &too_long);
        if (too_long) {
          Fail(400, "chunk size line longer than " + std::to_string(kMaxChunkSizeLine) + " bytes");
          return used;
        }
        used += n;
        if (!have_line) break;
        ParseChunkSize(line_);
        line_.clear();
        break;
      }
      case Phase::kChunkDataEnd: {
        const size_t n = TakeLine(rest, 0, &have_line, &too_long);
        if (too_long) {
          Fail(400, "chunk data not followed by CRLF");
          return used;
        }
        used += n;
        if (have_line) {
          line_.clear();
          phase_ = Phase::kChunkSize;
        }
        break;
      }
      case Phase::kDone:
      case Phase::kFailed:
        break;
    }
  }
  return used;
}

void HttpParser::ParseRequestLine(std::string_view line) {
  // request-line = method SP request-target SP HTTP-version (single spaces, RFC 9112 §3).
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp1 == std::string_view::npos || sp2 == std::string_view::npos ||
      line.find(' ', sp2 + 1) != std::string_view::npos) {
    return Fail(400, "malformed request line (want METHOD SP target SP HTTP/1.x)");
  }
  const std::string_view method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!IsToken(method)) return Fail(400, "malformed request method");
  if (target.empty()) return Fail(400, "empty request target");
  for (unsigned char c : target) {
    if (c <= 0x20 || c >= 0x7f)
      return Fail(400, "request target contains a control, space or non-ASCII byte");
  }
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.' ||
      version[5] < '0' || version[5] > '9' || version[7] < '0' || version[7] > '9') {
    return Fail(400, "malformed HTTP version");
  }
  if (version[5] != '1') return Fail(505, "only HTTP/1.0 and HTTP/1.1 are supported");
  if (!IsKnownMethod(method))
    return Fail(501, "method " + std::string(method) + " is not implemented");

  req_.method = std::string(method);
  req_.target = std::string(target);
  req_.version_minor = version[7] == '0' ? 0 : 1;

  std::string_view path = target;
  if (target == "*") {
    if (method != "OPTIONS") return Fail(400, "request target '*' is only valid for OPTIONS");
  } else if (target.front() != '/') {
    // absolute-form (RFC 9112 §3.2.2): keep the path of "http://host/path".
    const size_t scheme = target.find("://");
    if (scheme == std::string_view::npos)
      return Fail(400, "request target is neither a path nor an absolute URI");
    const size_t slash = target.find('/', scheme + 3);
    path = slash == std::string_view::npos ? std::string_view("/") : target.substr(slash);
  }
  const size_t q = path.find('?');
  req_.path = std::string(path.substr(0, q));
  if (q != std::string_view::npos) req_.query = std::string(path.substr(q + 1));
  // A fragment is never sent by a conforming client; drop it rather than route on it.
  const size_t hash = req_.path.find('#');
  if (hash != std::string::npos) req_.path.resize(hash);
}

void HttpParser::ParseHeaderLine(std::string_view line) {
  if (line.front() == ' ' || line.front() == '\t') {
    return Fail(400, "obsolete line folding in header fields is not accepted");
  }
  const size_t colon = line.find(':');
  if (colon == std::string_view::npos) return Fail(400, "header field without ':'");
  const std::string_view name = line.substr(0, colon);
  // No whitespace between name and colon (RFC 9112 §5.1): it is how request smuggling starts.
  if (!IsToken(name)) return Fail(400, "malformed header field name");
  const std::string_view value = TrimOws(line.substr(colon + 1));
  for (unsigned char c : value) {
    if (!IsFieldValueChar(c)) return Fail(400, "header field value contains a control byte");
  }
  if (req_.headers.size() >= limits_.max_headers) {
    return Fail(431, "more than " + std::to_string(limits_.max_headers) + " header fields");
  }
  req_.headers.Add(std::string(name), std::string(value));
}

void HttpParser::FinishHeaders() {
  const HttpHeaders& h = req_.headers;
  const bool http11 = req_.version_minor >= 1;

  if (http11 && h.Count("Host") == 0) return Fail(400, "HTTP/1.1 request without a Host header");
  if (h.Count("Host") > 1) return Fail(400, "more than one Host header");

  req_.keep_alive =
      http11 ? !h.HasToken("Connection", "close") : h.HasToken("Connection", "keep-alive");

  if (const std::string* expect = h.Get("Expect")) {
    if (!EqualsIgnoreCase(*expect, "100-continue"))
      return Fail(417, "only 'Expect: 100-continue' is supported");
    req_.expect_continue = http11;
  }

  const bool has_te = h.Count("Transfer-Encoding") > 0;
  const bool has_cl = h.Count("Content-Length") > 0;
  if (has_te && has_cl) return Fail(400, "both Transfer-Encoding and Content-Length");
  if (has_te) {
    // RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message is faulty framing (a 1.0
    // intermediary would not understand it): the request cannot be delimited safely.
    if (!http11) return Fail(400, "Transfer-Encoding in an HTTP/1.0 request");
    const std::vector<std::string> codings = h.GetList("Transfer-Encoding");
    if (codings.size() != 1 || !EqualsIgnoreCase(codings[0], "chunked")) {
      return Fail(501, "only 'Transfer-Encoding: chunked' is supported");
    }
    headers_complete_ = true;
    phase_ = Phase::kChunkSize;
    return;
  }
  uint64_t length = 0;
  if (has_cl) {
    Result<uint64_t> parsed = ParseContentLength(h);
    if (!parsed.ok())
      return Fail(parsed.status().code() == StatusCode::kOutOfRange ? 413 : 400,
                  parsed.status().message());
    length = *parsed;
    if (length > limits_.max_body_bytes) {
      return Fail(413, "request body of " + std::to_string(length) +
                           " bytes is larger than the limit of " +
                           std::to_string(limits_.max_body_bytes));
    }
  }
  headers_complete_ = true;
  if (length == 0) {
    phase_ = Phase::kDone;
    return;
  }
  // No reserve(length): memory follows the bytes that arrive, not what the client declared.
  body_remaining_ = length;
  phase_ = Phase::kBody;
}

void HttpParser::ParseChunkSize(std::string_view line) {
  // chunk-size [ chunk-ext ]; extensions are allowed by the grammar and ignored, but the line must
  // hold no control byte (a bare CR is how chunk parsers are told apart in smuggling attacks).
  for (unsigned char c : line) {
    if (!IsFieldValueChar(c)) return Fail(400, "chunk size line contains a control byte");
  }
  const size_t semi = line.find(';');
  const std::string_view digits = line.substr(0, semi);
  if (digits.empty()) return Fail(400, "missing chunk size");
  if (semi != std::string_view::npos && !IsValidChunkExtensions(line.substr(semi + 1)))
    return Fail(400, "malformed chunk extension");
  uint64_t size = 0;
  for (char c : digits) {
    const int v = HexValue(c);
    if (v < 0) return Fail(400, "chunk size is not hexadecimal");
    if (size > (limits_.max_body_bytes >> 4) + 1) {
      return Fail(413, "chunked request body larger than " +
                           std::to_string(limits_.max_body_bytes) + " bytes");
    }
    size = size * 16 + static_cast<uint64_t>(v);
  }
  if (size == 0) {
    phase_ = Phase::kTrailers;
    return;
  }
  if (req_.body.size() + size > limits_.max_body_bytes) {
    return Fail(413, "chunked request body larger than " + std::to_string(limits_.max_body_bytes) +
                         " bytes");
  }
  body_remaining_ = size;
  phase_ = Phase::kChunkData;
}

const char* HttpReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 201:
      return "Created";
    case 202:
      return "Accepted";
    case 204:
      return "No Content";
    case 301:
      return "Moved Permanently";
    case 302:
      return "Found";
    case 304:
      return "Not Modified";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 414:
      return "URI Too Long";
    case 415:
      return "Unsupported Media Type";
    case 417:
      return "Expectation Failed";
    case 422:
      return "Unprocessable Content";
    case 429:
      return "Too Many Requests";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 501:
      return "Not Implemented";
    case 502:
      return "Bad Gateway";
    case 503:
      return "Service Unavailable";
    case 504:
      return "Gateway Timeout";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

}  // namespace gannet::http
