#include "http/http_parser.h"

#include <gtest/gtest.h>

#include <string>
#include <utility>
#include <vector>

namespace gannet::http {
namespace {

using namespace std::string_literals;

// Feeds all of `input` at once; returns the parser.
HttpParser ParseAll(std::string_view input, HttpParserLimits limits = {}) {
  HttpParser p(limits);
  p.Feed(input);
  return p;
}

// Feeds one byte at a time; every byte before completion must be consumed.
HttpParser ParseByteByByte(std::string_view input, HttpParserLimits limits = {}) {
  HttpParser p(limits);
  for (size_t i = 0; i < input.size(); ++i) {
    const size_t used = p.Feed(input.substr(i, 1));
    if (p.state() == HttpParser::State::kError) break;
    EXPECT_EQ(used, 1u) << "byte " << i;
    if (p.state() == HttpParser::State::kComplete) {
      EXPECT_EQ(i + 1, input.size()) << "completed early";
      break;
    }
  }
  return p;
}

TEST(HttpParserTest, ParsesGetWithQueryAndHeaders) {
  const std::string in =
      "GET /v1/models?limit=2&x=y HTTP/1.1\r\nHost: localhost:8080\r\n"
      "X-Custom:   padded value  \r\nAccept: */*\r\n\r\n";
  HttpParser p;
  EXPECT_EQ(p.Feed(in), in.size());
  ASSERT_EQ(p.state(), HttpParser::State::kComplete);
  HttpRequest r = p.TakeRequest();
  EXPECT_EQ(r.method, "GET");
  EXPECT_EQ(r.target, "/v1/models?limit=2&x=y");
  EXPECT_EQ(r.path, "/v1/models");
  EXPECT_EQ(r.query, "limit=2&x=y");
  EXPECT_EQ(r.version_minor, 1);
  EXPECT_TRUE(r.keep_alive);
  EXPECT_TRUE(r.body.empty());
  ASSERT_NE(r.headers.Get("x-custom"), nullptr);
  EXPECT_EQ(*r.headers.Get("X-CUSTOM"), "padded value");
  EXPECT_EQ(*r.headers.Get("host"), "localhost:8080");
  EXPECT_EQ(r.headers.Get("missing"), nullptr);
  EXPECT_EQ(r.headers.size(), 3u);
  // The parser is ready for the next request.
  EXPECT_EQ(p.state(), HttpParser::State::kNeedMore);
  EXPECT_FALSE(p.in_progress());
}

TEST(HttpParserTest, ContentLengthBodyByteByByte) {
  const std::string in =
      "POST /v1/chat/completions HTTP/1.1\r\nHost: a\r\nContent-Type: application/json\r\n"
      "Content-Length: 13\r\n\r\n{\"a\":\"b c\"}\r\n";
  HttpParser p = ParseByteByByte(in);
  ASSERT_EQ(p.state(), HttpParser::State::kComplete) << p.error_message();
  HttpRequest r = p.TakeRequest();
  EXPECT_EQ(r.method, "POST");
  EXPECT_EQ(r.body, "{\"a\":\"b c\"}\r\n");
}

TEST(HttpParserTest, ChunkedBodyWholeAndByteByByte) {
  const std::string in =
      "POST /echo HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n"
      "4\r\nWiki\r\n5;name=value\r\npedia\r\nE\r\n in\r\n\r\nchunks.\r\n0\r\n"
      "Trailer-Field: x\r\n\r\n";
  for (bool bytewise : {false, true}) {
    HttpParser p = bytewise ? ParseByteByByte(in) : ParseAll(in);
    ASSERT_EQ(p.state(), HttpParser::State::kComplete) << p.error_message();
    EXPECT_EQ(p.request().body, "Wikipedia in\r\n\r\nchunks.");
  }
}

TEST(HttpParserTest, StopsAtTheEndOfEachPipelinedRequest) {
  const std::string first = "POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc";
  const std::string second = "GET /b HTTP/1.1\r\nHost: h\r\n\r\n";
  const std::string in = first + second + "GET /c";
  HttpParser p;
  size_t off = p.Feed(in);
  EXPECT_EQ(off, first.size());
  ASSERT_EQ(p.state(), HttpParser::State::kComplete);
  EXPECT_EQ(p.Feed(std::string_view(in).substr(off)), 0u)
      << "a complete request takes no more bytes";
  EXPECT_EQ(p.TakeRequest().path, "/a");
  off += p.Feed(std::string_view(in).substr(off));
  ASSERT_EQ(p.state(), HttpParser::State::kComplete);
  EXPECT_EQ(p.TakeRequest().path, "/b");
  off += p.Feed(std::string_view(in).substr(off));
  EXPECT_EQ(off, in.size());
  EXPECT_EQ(p.state(), HttpParser::State::kNeedMore);
  EXPECT_TRUE(p.in_progress());
}

TEST(HttpParserTest, StrayEmptyLinesAreNotARequestInProgress) {
  HttpParser p;
  EXPECT_EQ(p.Feed("\r\n\r"), 3u);
  EXPECT_FALSE(p.in_progress());
  p.Feed("\nG");
  EXPECT_TRUE(p.in_progress());
}

TEST(HttpParserTest, AcceptsBareLfLineEndsAndLeadingEmptyLines) {
  HttpParser p = ParseAll("\r\n\nGET / HTTP/1.1\nHost: a\n\n");
  ASSERT_EQ(p.state(), HttpParser::State::kComplete) << p.error_message();
  EXPECT_EQ(p.request().path, "/");
}

TEST(HttpParserTest, AbsoluteFormAndAsteriskTargets) {
  HttpParser p =
      ParseAll("GET http://example.com/v1/models?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n");
  ASSERT_EQ(p.state(), HttpParser::State::kComplete) << p.error_message();
  EXPECT_EQ(p.request().path, "/v1/models");
  EXPECT_EQ(p.request().query, "q=1");
  p = ParseAll("OPTIONS * HTTP/1.1\r\nHost: a\r\n\r\n");
  EXPECT_EQ(p.state(), HttpParser::State::kComplete) << p.error_message();
}

struct BadCase {
  std::string input;
  int status;
};

void ExpectErrors(const std::vector<BadCase>& cases, HttpParserLimits limits = {}) {
  for (const BadCase& c : cases) {
    for (bool bytewise : {false, true}) {
      HttpParser p = bytewise ? ParseByteByByte(c.input, limits) : ParseAll(c.input, limits);
      ASSERT_EQ(p.state(), HttpParser::State::kError) << "input: " << c.input;
      EXPECT_EQ(p.error_status(), c.status)
          << "input: " << c.input << " message: " << p.error_message();
      EXPECT_FALSE(p.error_message().empty());
      // A failed parser takes nothing more.
      EXPECT_EQ(p.Feed("GET / HTTP/1.1\r\n"), 0u);
    }
  }
}

TEST(HttpParserTest, RejectsBadRequestLines) {
  ExpectErrors({
      {"GET\r\n", 400},
      {"GET /\r\n", 400},
      {"GET / HTTP/1.1 extra\r\n", 400},
      {"GET  / HTTP/1.1\r\n", 400},
      {"GET / HTTP/1.1 \r\n", 400},
      {"GET / HTTP/1.x\r\n", 400},
      {"GET / http/1.1\r\n", 400},
      {"GET / HTTP/11\r\n", 400},
      {"G(T / HTTP/1.1\r\n", 400},
      {"GET foo HTTP/1.1\r\n", 400},
      {"GET /a\x01z HTTP/1.1\r\n", 400},
      {"GET /caf\xc3\xa9 HTTP/1.1\r\n", 400},
      {"GET * HTTP/1.1\r\n", 400},
      {"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n"s, 400},  // a TLS ClientHello
      {"\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n\r\n", 400},
      {"GET / HTTP/2.0\r\n", 505},
      {"GET / HTTP/0.9\r\n", 505},
      {"BREW /pot HTTP/1.1\r\n", 501},
      {"CONNECT example.com:443 HTTP/1.1\r\n", 501},
  });
}

TEST(HttpParserTest, RejectsBadHeaders) {
  ExpectErrors({
      {"GET / HTTP/1.1\r\n\r\n", 400},                        // no Host
      {"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400},  // two Hosts
      {"GET / HTTP/1.1\r\nHost : a\r\n\r\n", 400},            // space before colon
      {"GET / HTTP/1.1\r\nHost: a\r\nNoColon\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a\r\nX: 1\r\n  folded\r\n\r\n", 400},  // obs-fold
      {"GET / HTTP/1.1\r\nHost: a\r\nX: a\x00z\r\n\r\n"s, 400},
      {"GET / HTTP/1.1\r\nHost: a\r\nX: a\rz\r\n\r\n", 400},
      {"GET / HTTP/1.1\r\nHost: a\r\n: empty-name\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n",
       400},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: gzip, chunked\r\n\r\n", 501},
      {"POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: identity\r\n\r\n", 501},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 1x\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: -1\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length:\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 3, 4\r\n\r\n", 400},
      {"POST / HTTP/1.1\r\nHost: a\r\nExpect: 200-ok\r\n\r\n", 417},
  });
}

TEST(HttpParserTest, AcceptsRepeatedEqualContentLength) {
  HttpParser p =
      ParseAll("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\ncontent-length: 2\r\n\r\nok");
  ASSERT_EQ(p.state(), HttpParser::State::kComplete) << p.error_message();
  EXPECT_EQ(p.request().body, "ok");
}

TEST(HttpParserTest, RejectsBadChunkedFraming) {
  const std::string head = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  ExpectErrors({
      {head + "zz\r\n", 400},
      {head + "\r\n", 400},
      {head + "3\r\nabcX\r\n", 400},  // chunk data longer than its size
      {head + "3;" + std::string(2000, 'e') + "\r\n", 400},
      {head + "0\r\nbad trailer\r\n\r\n", 400},
  });
}

TEST(HttpParserTest, StrictFramingAgainstSmuggling) {
  const std::string chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  auto with_cl = [](const std::string& value) {
    return "POST / HTTP/1.1\r\nHost: a\r\nContent-Length: " + value + "\r\n\r\nhello";
  };
  ExpectErrors({
      // Transfer-Encoding in HTTP/1.0 is faulty framing (RFC 9112 §6.1).
      {"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n", 400},
      // A bare CR anywhere in a chunk line.
      {chunked + "5\r;x\r\nhello\r\n0\r\n\r\n", 400},
      {chunked + "5;a\rb\r\nhello\r\n0\r\n\r\n", 400},
      {chunked + "5\r\nhello\r\n0\r\nX: a\rb\r\n\r\n", 400},  // ... or a trailer
      {chunked + "5\rhello\r\n0\r\n\r\n", 400},
      {chunked + "5; =x\r\nhello\r\n0\r\n\r\n", 400},  // extension without a name
      {chunked + " 5\r\nhello\r\n0\r\n\r\n", 400},     // whitespace before the size
      // Content-Length list members must all be present and equal.
      {with_cl("5,"), 400},
      {with_cl(",5"), 400},
      {with_cl("5,,5"), 400},
      {with_cl("+5"), 400},
      {with_cl("5 5"), 400},
  });
  for (const std::string& ok :
       {with_cl("5"), with_cl("5, 5"), chunked + "5;name=value;flag\r\nhello\r\n0\r\n\r\n"}) {
    HttpParser p = ParseAll(ok);
    ASSERT_EQ(p.state(), HttpParser::State::kComplete) << ok << ": " << p.error_message();
    EXPECT_EQ(p.request().body, "hello");
  }
}

TEST(HttpParserTest, DeclaredContentLengthReservesNoMemory) {
  HttpParser p(HttpParserLimits{.max_body_bytes = 64 << 20});
  p.Feed("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 60000000\r\n\r\nab");
  ASSERT_EQ(p.state(), HttpParser::State::kNeedMore);
  EXPECT_TRUE(p.body_pending());
  EXPECT_EQ(p.request().body, "ab");
  // Memory follows the bytes that arrived, not the 60 MB the client promised.
  EXPECT_LT(p.request().body.capacity(), 4096u);
}

TEST(HttpParserTest, EnforcesSizeLimits) {
  HttpParserLimits limits{
      .max_request_line = 64, .max_header_bytes = 256, .max_headers = 4, .max_body_bytes = 10};
  std::string many_headers = "GET / HTTP/1.1\r\nHost: a\r\n";
  for (int i = 0; i < 4; ++i) many_headers += "X-" + std::to_string(i) + ": v\r\n";
  const std::string chunked = "POST / HTTP/1.1\r\nHost: a\r\nTransfer-Encoding: chunked\r\n\r\n";
  ExpectErrors(
      {
          {"GET /" + std::string(100, 'a') + " HTTP/1.1\r\n", 414},
          {"GET / HTTP/1.1\r\nHost: a\r\nX-Big: " + std::string(300, 'v') + "\r\n\r\n", 431},
          {many_headers + "\r\n", 431},
          {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 11\r\n\r\n", 413},
          {"POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 99999999999999999999999\r\n\r\n", 413},
          {chunked + "6\r\nabcdef\r\n6\r\n", 413},
          {chunked + "ffffffffffffffffffffffff\r\n", 413},
          {chunked + "0\r\nT: " + std::string(300, 't') + "\r\n\r\n", 431},
      },
      limits);
  // Exactly at the limits is fine.
  HttpParser p =
      ParseAll("POST / HTTP/1.1\r\nHost: a\r\nContent-Length: 10\r\n\r\n0123456789", limits);
  EXPECT_EQ(p.state(), HttpParser::State::kComplete) << p.error_message();
}

TEST(HttpParserTest, OversizedHeadersFailWithoutBufferingThemAll) {
  HttpParserLimits limits{.max_header_bytes = 1024};
  HttpParser p(limits);
  p.Feed("GET / HTTP/1.1\r\nHost: a\r\nX-Endless: ");
  const std::string filler(100, 'x');
  size_t fed = 0;
  while (p.state() == HttpParser::State::kNeedMore && fed < 1 << 20) {
    p.Feed(filler);
    fed += filler.size();
  }
  ASSERT_EQ(p.state(), HttpParser::State::kError);
  EXPECT_EQ(p.error_status(), 431);
  EXPECT_LT(fed, 2048u);
}

TEST(HttpParserTest, BodyLimitIsCheckedBeforeTheBodyArrives) {
  HttpParser p(HttpParserLimits{.max_body_bytes = 100});
  p.Feed("POST /upload HTTP/1.1\r\nHost: a\r\nExpect: 100-continue\r\nContent-Length: 101\r\n\r\n");
  ASSERT_EQ(p.state(), HttpParser::State::kError);
  EXPECT_EQ(p.error_status(), 413);
}

TEST(HttpParserTest, KeepAliveRules) {
  struct Case {
    std::string request;
    bool keep_alive;
  };
  const std::vector<Case> cases = {
      {"GET / HTTP/1.1\r\nHost: a\r\n\r\n", true},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: Keep-Alive, CLOSE\r\n\r\n", false},
      {"GET / HTTP/1.1\r\nHost: a\r\nConnection: upgrade\r\n\r\n", true},
      {"GET / HTTP/1.0\r\n\r\n", false},
      {"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n", true},
      {"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n", true},
      {"GET / HTTP/1.2\r\nHost: a\r\n\r\n", true},  // a later 1.x is read as 1.1
  };
  for (const Case& c : cases) {
    HttpParser p = ParseAll(c.request);
    ASSERT_EQ(p.state(), HttpParser::State::kComplete) << c.request << p.error_message();
    EXPECT_EQ(p.request().keep_alive, c.keep_alive) << c.request;
  }
  EXPECT_EQ(ParseAll("GET / HTTP/1.0\r\n\r\n").request().version_minor, 0);
}

TEST(HttpParserTest, ExpectContinueIsReportedOnceHeadersAreIn) {
  HttpParser p;
  p.Feed(
      "POST /v1/completions HTTP/1.1\r\nHost: a\r\nExpect: 100-Continue\r\nContent-Length: 4\r\n");
  EXPECT_FALSE(p.headers_complete());
  p.Feed("\r\n");
  EXPECT_TRUE(p.headers_complete());
  EXPECT_TRUE(p.body_pending());
  EXPECT_TRUE(p.request().expect_continue);
  EXPECT_EQ(p.state(), HttpParser::State::kNeedMore);
  p.Feed("body");
  ASSERT_EQ(p.state(), HttpParser::State::kComplete);
  EXPECT_FALSE(p.body_pending());
  // HTTP/1.0 has no 100 Continue.
  EXPECT_FALSE(ParseAll("POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 1\r\n\r\nx")
                   .request()
                   .expect_continue);
}

TEST(HttpParserTest, HeaderListHelpers) {
  HttpParser p = ParseAll("GET / HTTP/1.1\r\nHost: a\r\nAccept: a/b, c/d\r\naccept: e/f\r\n\r\n");
  ASSERT_EQ(p.state(), HttpParser::State::kComplete);
  const HttpHeaders& h = p.request().headers;
  EXPECT_EQ(h.GetList("ACCEPT"), (std::vector<std::string>{"a/b", "c/d", "e/f"}));
  EXPECT_EQ(h.Count("Accept"), 2u);
  EXPECT_TRUE(h.HasToken("accept", "C/D"));
  EXPECT_FALSE(h.HasToken("accept", "c"));
}

TEST(HttpParserTest, ReasonPhrases) {
  EXPECT_STREQ(HttpReasonPhrase(413), "Content Too Large");
  EXPECT_STREQ(HttpReasonPhrase(431), "Request Header Fields Too Large");
  EXPECT_STREQ(HttpReasonPhrase(299), "Unknown");
}

}  // namespace
}  // namespace gannet::http
