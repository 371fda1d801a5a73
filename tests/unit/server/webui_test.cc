// The web page's files as the server answers them (server/webui.h): what the binary embeds is the
// committed source, every file the page loads exists with its content type, the security headers,
// ETag revalidation, HEAD and the other methods.
#include "server/webui.h"

#include <gtest/gtest.h>

#include <fstream>
#include <regex>
#include <sstream>
#include <string>

namespace gannet::server {
namespace {

http::HttpRequest Request(std::string method, std::string path, std::string if_none_match = "") {
  http::HttpRequest req{.method = std::move(method), .target = path, .path = path};
  if (!if_none_match.empty()) req.headers.Add("If-None-Match", std::move(if_none_match));
  return req;
}

std::string Header(const http::HttpResponse& r, const std::string& name) {
  for (const auto& [n, v] : r.headers) {
    if (n == name) return v;
  }
  return "<absent>";
}

std::string SourceFile(const std::string& name) {
  std::ifstream in(std::string(GANNET_SOURCE_DIR) + "/src/server/webui/" + name, std::ios::binary);
  std::ostringstream out;
  out << in.rdbuf();
  return out.str();
}

http::HttpResponse Get(const std::string& path) {
  std::optional<http::HttpResponse> r = WebUiResponse(Request("GET", path));
  EXPECT_TRUE(r.has_value()) << path;
  return r.value_or(http::HttpResponse{.status = 0});
}

TEST(WebUiTest, Paths) {
  EXPECT_TRUE(IsWebUiPath("/"));
  EXPECT_TRUE(IsWebUiPath("/index.html"));
  EXPECT_TRUE(IsWebUiPath("/webui/app.js"));
  EXPECT_FALSE(IsWebUiPath("/webuiapp.js"));
  EXPECT_FALSE(IsWebUiPath("/v1/models"));
  EXPECT_FALSE(WebUiResponse(Request("GET", "/health")).has_value());
}

TEST(WebUiTest, ServesTheCommittedFiles) {
  const http::HttpResponse page = Get("/");
  EXPECT_EQ(page.status, 200);
  EXPECT_EQ(Header(page, "Content-Type"), "text/html; charset=utf-8");
  EXPECT_EQ(page.body, SourceFile("index.html"));
  EXPECT_EQ(Get("/index.html").body, page.body);
  // Every file the page and its scripts load is there, with its type, and is the source's.
  std::string all = page.body + Get("/webui/app.js").body;
  const std::regex ref(R"((?:src|href)="/webui/([^"]+)\"|from '\./([^']+)')");
  int found = 0;
  for (std::sregex_iterator it(all.begin(), all.end(), ref), end; it != end; ++it, ++found) {
    const std::string name = (*it)[1].matched ? (*it)[1].str() : (*it)[2].str();
    const http::HttpResponse r = Get("/webui/" + name);
    EXPECT_EQ(r.status, 200) << name;
    EXPECT_EQ(r.body, SourceFile(name)) << name;
    const std::string type = Header(r, "Content-Type");
    const std::string want = name.ends_with(".js")    ? "text/javascript; charset=utf-8"
                             : name.ends_with(".css") ? "text/css; charset=utf-8"
                             : name.ends_with(".svg") ? "image/svg+xml"
                                                      : type;
    EXPECT_EQ(type, want) << name;
  }
  EXPECT_EQ(found, 4);  // icon, style, app.js, markdown.js
}

TEST(WebUiTest, PageHasNoInlineScriptOrStyle) {
  const std::string html = Get("/").body;
  const std::regex script(R"(<script\b[^>]*>)");
  for (std::sregex_iterator it(html.begin(), html.end(), script), end; it != end; ++it)
    EXPECT_NE(it->str().find(" src=\"/webui/"), std::string::npos) << it->str();
  EXPECT_FALSE(std::regex_search(html, std::regex(R"(\son[a-z]+=)")));  // no event attributes
  EXPECT_FALSE(std::regex_search(html, std::regex(R"(\sstyle=|<style)")));
}

TEST(WebUiTest, SecurityHeaders) {
  const http::HttpResponse r = Get("/webui/app.js");
  const std::string csp = Header(r, "Content-Security-Policy");
  EXPECT_NE(csp.find("default-src 'none'"), std::string::npos);
  EXPECT_NE(csp.find("script-src 'self';"), std::string::npos);
  EXPECT_NE(csp.find("connect-src 'self';"), std::string::npos);
  EXPECT_NE(csp.find("frame-ancestors 'none'"), std::string::npos);
  EXPECT_NE(csp.find("require-trusted-types-for 'script'"), std::string::npos);
  EXPECT_EQ(csp.find("unsafe"), std::string::npos);
  EXPECT_EQ(csp.find("http"), std::string::npos);  // no other origin
  EXPECT_EQ(Header(r, "X-Content-Type-Options"), "nosniff");
  EXPECT_EQ(Header(r, "Cache-Control"), "no-cache");
}

TEST(WebUiTest, EtagRevalidation) {
  const http::HttpResponse first = Get("/");
  const std::string etag = Header(first, "ETag");
  ASSERT_EQ(etag.size(), 22u);  // "<20 hex digits>"
  EXPECT_NE(etag, Header(Get("/webui/app.js"), "ETag"));
  for (const std::string& inm :
       {etag, "W/" + etag, "\"other\", " + etag, std::string("*"), " \"x\" ,W/" + etag}) {
    std::optional<http::HttpResponse> r = WebUiResponse(Request("GET", "/", inm));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 304) << inm;
    EXPECT_TRUE(r->body.empty());
    EXPECT_EQ(Header(*r, "ETag"), etag);
  }
  for (const std::string& inm : {std::string("\"other\""), etag.substr(1), std::string(",")})
    EXPECT_EQ(WebUiResponse(Request("GET", "/", inm))->status, 200) << inm;
}

TEST(WebUiTest, MethodsAndMissingFiles) {
  std::optional<http::HttpResponse> head = WebUiResponse(Request("HEAD", "/"));
  ASSERT_TRUE(head);
  EXPECT_EQ(head->status, 200);  // the transport drops the body of a HEAD answer
  for (const char* method : {"POST", "PUT", "DELETE"}) {
    std::optional<http::HttpResponse> r = WebUiResponse(Request(method, "/"));
    ASSERT_TRUE(r);
    EXPECT_EQ(r->status, 405);
    EXPECT_EQ(Header(*r, "Allow"), "GET, HEAD");
  }
  EXPECT_EQ(Get("/webui/missing.js").status, 404);
  EXPECT_EQ(Get("/webui/").status, 404);
  EXPECT_EQ(Get("/webui/../index.html").status, 404);
}

}  // namespace
}  // namespace gannet::server
