// OpenAiService's front door over a real HttpServer (no engine attached: the checks run before
// any model is needed): the Host check against DNS rebinding, Origin checks and CORS preflight,
// and the API key on /metrics.
#include "server/openai_service.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "../http/test_client.h"
#include "http/http_server.h"

namespace gannet::server {
namespace {

using http::testing::ClientResponse;
using http::testing::TestClient;

class ServiceFront {
 public:
  explicit ServiceFront(OpenAiServiceOptions options) : service_(std::move(options)) {
    server_ = std::make_unique<http::HttpServer>(
        http::HttpServerOptions{.host = "127.0.0.1", .port = 0},
        [this](http::HttpRequest req, std::shared_ptr<http::ResponseWriter> w) {
          service_.Handle(std::move(req), std::move(w));
        });
    const Status st = server_->Start();
    EXPECT_TRUE(st.ok()) << st.ToString();
  }
  ~ServiceFront() { server_->Shutdown(std::chrono::seconds(1)); }

  // One request with these extra header lines ("Name: value\r\n" each); Host defaults to
  // 127.0.0.1:PORT unless `headers` sets one.
  ClientResponse Ask(const std::string& method, const std::string& path,
                     const std::string& headers = "") {
    auto c = TestClient::Connect(server_->port());
    EXPECT_TRUE(c);
    if (!c) return {};
    std::string req = method + " " + path + " HTTP/1.1\r\n";
    if (headers.find("Host:") == std::string::npos)
      req += "Host: 127.0.0.1:" + std::to_string(server_->port()) + "\r\n";
    req += headers + "Content-Length: 0\r\n\r\n";
    EXPECT_TRUE(c->Send(req));
    std::optional<ClientResponse> r = c->ReadResponse(method == "HEAD");
    EXPECT_TRUE(r);
    return r.value_or(ClientResponse{});
  }

  uint16_t port() const { return server_->port(); }

 private:
  OpenAiService service_;
  std::unique_ptr<http::HttpServer> server_;
};

std::string ErrorCode(const ClientResponse& r) {
  const nlohmann::json j = nlohmann::json::parse(r.body, nullptr, /*allow_exceptions=*/false);
  if (!j.is_object() || !j.contains("error") || !j["error"].contains("code")) return "<none>";
  const nlohmann::json& code = j["error"]["code"];
  return code.is_string() ? code.get<std::string>() : code.dump();
}

TEST(OpenAiServiceTest, LoopbackNames) {
  for (const char* ok :
       {"localhost", "LOCALHOST:8080", "127.0.0.1", "127.0.0.1:1", "[::1]", "[::1]:8080"}) {
    EXPECT_TRUE(IsLoopbackHost(ok)) << ok;
  }
  for (const char* bad :
       {"evil.example", "evil.example:8080", "localhost.evil.example", "127.0.0.1.nip.io",
        "localhost:", "localhost:80x", "::1", "[::2]", "0.0.0.0", ""}) {
    EXPECT_FALSE(IsLoopbackHost(bad)) << bad;
  }
  for (const char* ok : {"127.0.0.1", "127.1.2.3", "::1", "[::1]", "localhost"})
    EXPECT_TRUE(IsLoopbackBindAddress(ok)) << ok;
  for (const char* bad : {"0.0.0.0", "::", "192.168.1.2", "example.com"})
    EXPECT_FALSE(IsLoopbackBindAddress(bad)) << bad;
  EXPECT_EQ(ParseOriginList(" http://a.example/, https://b.example:8443 ,,*"),
            (std::vector<std::string>{"http://a.example", "https://b.example:8443", "*"}));
}

TEST(OpenAiServiceTest, LoopbackBoundServerRefusesForeignHosts) {
  ServiceFront front({.loopback_host_only = true});
  const std::string port = std::to_string(front.port());
  for (const std::string& host : std::vector<std::string>{
           "localhost", "localhost:" + port, "127.0.0.1:" + port, "[::1]", "[::1]:" + port}) {
    const ClientResponse r = front.Ask("GET", "/v1/models", "Host: " + host + "\r\n");
    EXPECT_EQ(r.status, 200) << host << " " << r.body;
  }
  // A page on a rebound DNS name reaches 127.0.0.1 with its own name in Host.
  for (const std::string& host :
       std::vector<std::string>{"attacker.example", "attacker.example:" + port}) {
    const ClientResponse r = front.Ask("GET", "/v1/models", "Host: " + host + "\r\n");
    EXPECT_EQ(r.status, 403) << host;
    EXPECT_EQ(ErrorCode(r), "host_not_allowed") << r.body;
    EXPECT_EQ(front.Ask("GET", "/metrics", "Host: " + host + "\r\n").status, 403);
  }
  // Bound elsewhere (loopback_host_only off), any Host is served.
  ServiceFront open({});
  EXPECT_EQ(open.Ask("GET", "/v1/models", "Host: gannet.internal:8080\r\n").status, 200);
}

TEST(OpenAiServiceTest, OriginsAndCors) {
  ServiceFront front({.loopback_host_only = true, .allowed_origins = {"https://app.example"}});
  const std::string self = "http://127.0.0.1:" + std::to_string(front.port());
  // No Origin: a non-browser client.
  EXPECT_EQ(front.Ask("GET", "/v1/models").status, 200);
  // Same origin: allowed.
  ClientResponse r = front.Ask("GET", "/v1/models", "Origin: " + self + "\r\n");
  EXPECT_EQ(r.status, 200);
  // A cross-site page: 403 in OpenAI's error shape, with no CORS header to read it by.
  r = front.Ask("POST", "/v1/chat/completions", "Origin: https://evil.example\r\n");
  EXPECT_EQ(r.status, 403);
  EXPECT_EQ(ErrorCode(r), "origin_not_allowed") << r.body;
  EXPECT_FALSE(r.Has("access-control-allow-origin"));
  EXPECT_EQ(front.Ask("GET", "/health", "Origin: null\r\n").status, 403);
  EXPECT_EQ(front
                .Ask("OPTIONS", "/v1/chat/completions",
                     "Origin: https://evil.example\r\nAccess-Control-Request-Method: POST\r\n")
                .status,
            403);
  // An allowed origin: its responses carry Access-Control-Allow-Origin.
  r = front.Ask("GET", "/v1/models", "Origin: https://app.example\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("access-control-allow-origin"), "https://app.example");
  EXPECT_EQ(r.Header("vary"), "Origin");
  r = front.Ask("GET", "/nope", "Origin: https://app.example\r\n");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(r.Header("access-control-allow-origin"), "https://app.example");
  // ... and its preflight is answered.
  r = front.Ask("OPTIONS", "/v1/chat/completions",
                "Origin: https://app.example\r\nAccess-Control-Request-Method: POST\r\n"
                "Access-Control-Request-Headers: authorization, content-type\r\n");
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(r.Header("access-control-allow-origin"), "https://app.example");
  EXPECT_EQ(r.Header("access-control-allow-methods"), "GET, POST, OPTIONS");
  EXPECT_EQ(r.Header("access-control-allow-headers"), "Authorization, Content-Type");
  EXPECT_FALSE(r.Header("access-control-max-age").empty());
  // OPTIONS without a preflight: the methods.
  r = front.Ask("OPTIONS", "/v1/models");
  EXPECT_EQ(r.status, 204);
  EXPECT_EQ(r.Header("allow"), "GET, POST, OPTIONS");

  ServiceFront any({.allowed_origins = {"*"}});
  r = any.Ask("GET", "/v1/models", "Origin: https://whoever.example\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("access-control-allow-origin"), "https://whoever.example");
}

TEST(OpenAiServiceTest, ApiKeyCoversMetricsUnlessOpened) {
  ServiceFront keyed({.api_key = "sekret"});
  ClientResponse r = keyed.Ask("GET", "/metrics");
  EXPECT_EQ(r.status, 401);
  EXPECT_EQ(ErrorCode(r), "invalid_api_key");
  EXPECT_EQ(keyed.Ask("GET", "/metrics", "Authorization: Bearer wrong\r\n").status, 401);
  r = keyed.Ask("GET", "/metrics", "Authorization: Bearer sekret\r\n");
  EXPECT_EQ(r.status, 200);
  EXPECT_NE(r.body.find("gannet_requests_running"), std::string::npos);
  EXPECT_EQ(keyed.Ask("GET", "/v1/models").status, 401);
  EXPECT_NE(keyed.Ask("GET", "/health").status, 401);  // health stays open (503: no model yet)
  // A preflight carries no credentials: it is answered without the key.
  EXPECT_EQ(keyed
                .Ask("OPTIONS", "/v1/models",
                     "Origin: http://127.0.0.1:" + std::to_string(keyed.port()) +
                         "\r\nAccess-Control-Request-Method: GET\r\n")
                .status,
            204);

  ServiceFront opened({.api_key = "sekret", .metrics_no_auth = true});
  EXPECT_EQ(opened.Ask("GET", "/metrics").status, 200);
  EXPECT_EQ(opened.Ask("GET", "/v1/models").status, 401);
}

TEST(OpenAiServiceTest, WebPageNeedsNoKeyAndCanBeTurnedOff) {
  ServiceFront keyed({.api_key = "sekret"});
  ClientResponse r = keyed.Ask("GET", "/");
  EXPECT_EQ(r.status, 200);
  EXPECT_EQ(r.Header("content-type"), "text/html; charset=utf-8");
  EXPECT_NE(r.Header("content-security-policy").find("script-src 'self'"), std::string::npos);
  EXPECT_EQ(keyed.Ask("HEAD", "/webui/app.js").status, 200);
  // A page on a foreign origin may not load it through a script either, nor from a rebound name.
  EXPECT_EQ(keyed.Ask("GET", "/", "Origin: https://evil.example\r\n").status, 403);
  ServiceFront local({.loopback_host_only = true});
  EXPECT_EQ(local.Ask("GET", "/", "Host: attacker.example\r\n").status, 403);

  ServiceFront off({.webui = false});
  r = off.Ask("GET", "/");
  EXPECT_EQ(r.status, 404);
  EXPECT_EQ(ErrorCode(r), "unknown_url");
  EXPECT_EQ(off.Ask("GET", "/webui/app.js").status, 404);
}

}  // namespace
}  // namespace gannet::server
