// A blocking HTTP/1.1 client over a loopback socket for the HTTP tests: it speaks raw bytes so a
// test can send anything (garbage, pipelined requests, half a header) and reads responses with
// the framing a real client uses (Content-Length, chunked, or until close).
#pragma once

#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace gannet::http::testing {

struct ClientResponse {
  int status = 0;
  std::map<std::string, std::string> headers;  // names lower-cased
  std::string body;
  std::vector<std::string> chunks;  // the chunks of a chunked body, in order
  bool Has(const std::string& name) const { return headers.count(name) > 0; }
  std::string Header(const std::string& name) const {
    auto it = headers.find(name);
    return it == headers.end() ? std::string() : it->second;
  }
};

class TestClient {
 public:
  // Connects to 127.0.0.1:port; nullptr when refused. Reads time out after `timeout`.
  static std::unique_ptr<TestClient> Connect(
      uint16_t port, std::chrono::milliseconds timeout = std::chrono::seconds(20)) {
    const int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return nullptr;
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_port = htons(port);
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
      close(fd);
      return nullptr;
    }
    const int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return std::unique_ptr<TestClient>(new TestClient(fd, timeout));
  }

  ~TestClient() { Close(); }

  void Close() {
    if (fd_ >= 0) close(fd_);
    fd_ = -1;
  }
  int fd() const { return fd_; }

  bool Send(std::string_view data) {
    while (!data.empty()) {
      const ssize_t n = send(fd_, data.data(), data.size(), MSG_NOSIGNAL);
      if (n <= 0) return false;
      data.remove_prefix(static_cast<size_t>(n));
    }
    return true;
  }

  // Reads one response. `head_request`: the body is not there whatever the headers say.
  std::optional<ClientResponse> ReadResponse(bool head_request = false) {
    std::optional<ClientResponse> resp = ReadHead();
    if (!resp) return std::nullopt;
    if (head_request || resp->status == 204 || resp->status == 304 || resp->status < 200)
      return resp;
    if (resp->Header("transfer-encoding") == "chunked") {
      while (true) {
        std::optional<std::string> chunk = ReadChunk();
        if (!chunk) return std::nullopt;
        if (chunk->empty()) break;
        resp->body += *chunk;
        resp->chunks.push_back(std::move(*chunk));
      }
    } else if (resp->Has("content-length")) {
      const size_t n = std::stoul(resp->Header("content-length"));
      if (!Fill(n)) return std::nullopt;
      resp->body = buf_.substr(0, n);
      buf_.erase(0, n);
    } else {
      resp->body = ReadUntilClose();
    }
    return resp;
  }

  // Status line and headers only.
  std::optional<ClientResponse> ReadHead() {
    std::optional<std::string> line = ReadLine();
    if (!line || line->size() < 12 || line->compare(0, 5, "HTTP/") != 0) return std::nullopt;
    ClientResponse resp;
    resp.status = std::stoi(line->substr(9, 3));
    while (true) {
      line = ReadLine();
      if (!line) return std::nullopt;
      if (line->empty()) break;
      const size_t colon = line->find(':');
      if (colon == std::string::npos) return std::nullopt;
      std::string name = line->substr(0, colon);
      for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
      size_t v = colon + 1;
      while (v < line->size() && (*line)[v] == ' ') ++v;
      resp.headers[name] = line->substr(v);
    }
    return resp;
  }

  // The next chunk of a chunked body: its data, "" for the last chunk, nullopt on error/EOF.
  std::optional<std::string> ReadChunk() {
    std::optional<std::string> size_line = ReadLine();
    if (!size_line || size_line->empty()) return std::nullopt;
    const size_t n = std::stoul(*size_line, nullptr, 16);
    if (n == 0) {
      std::optional<std::string> end = ReadLine();  // no trailers from our server
      if (!end || !end->empty()) return std::nullopt;
      return std::string();
    }
    if (!Fill(n + 2) || buf_.compare(n, 2, "\r\n") != 0) return std::nullopt;
    std::string data = buf_.substr(0, n);
    buf_.erase(0, n + 2);
    return data;
  }

  std::string ReadUntilClose() {
    while (ReadMore()) {
    }
    std::string out = std::move(buf_);
    buf_.clear();
    return out;
  }

  // True when the server closes the connection (EOF or reset) within `timeout`; data that arrives
  // meanwhile is kept.
  bool WaitForClose(std::chrono::milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      pollfd p{fd_, POLLIN, 0};
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::steady_clock::now());
      if (poll(&p, 1, static_cast<int>(std::max<int64_t>(left.count(), 0))) <= 0) continue;
      char tmp[4096];
      const ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
      if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) return true;
      if (n > 0) buf_.append(tmp, static_cast<size_t>(n));
    }
    return false;
  }

  const std::string& buffered() const { return buf_; }

 private:
  TestClient(int fd, std::chrono::milliseconds timeout) : fd_(fd) {
    timeval tv{};
    tv.tv_sec = static_cast<time_t>(timeout.count() / 1000);
    tv.tv_usec = static_cast<suseconds_t>((timeout.count() % 1000) * 1000);
    setsockopt(fd_, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
  }

  bool ReadMore() {
    char tmp[16384];
    const ssize_t n = recv(fd_, tmp, sizeof(tmp), 0);
    if (n <= 0) return false;
    buf_.append(tmp, static_cast<size_t>(n));
    return true;
  }
  bool Fill(size_t n) {
    while (buf_.size() < n) {
      if (!ReadMore()) return false;
    }
    return true;
  }
  std::optional<std::string> ReadLine() {
    size_t pos;
    while ((pos = buf_.find("\r\n")) == std::string::npos) {
      if (!ReadMore()) return std::nullopt;
    }
    std::string line = buf_.substr(0, pos);
    buf_.erase(0, pos + 2);
    return line;
  }

  int fd_ = -1;
  std::string buf_;
};

}  // namespace gannet::http::testing
