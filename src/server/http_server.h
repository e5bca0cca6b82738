#pragma once
// The HTTP/1.1 front end (cpp-httplib): binds, registers the routes of routes.h over a
// JobService, and serves until stop(). Limits for hostile or broken clients: bodies over
// max_body_bytes get 413, a client that stalls longer than the read/write timeouts is
// dropped, and every error is an OpenAI-style error object.

#include <cstddef>
#include <memory>
#include <string>

namespace httplib {
class Server;
}

namespace ditserve::server {

class JobService;

struct HttpOptions {
  std::string host = "127.0.0.1";
  int port = 8000;  // 0: any free port (bind() returns it)
  std::size_t max_body_bytes = 1 << 20;
  int read_timeout_s = 10;   // a request's bytes must keep arriving
  int write_timeout_s = 10;  // a response's bytes must keep leaving
  int threads = 64;          // connections served at once (event streams hold one each)
  // An idle keep-alive connection is closed after this; stop() waits for such connections
  // (cpp-httplib does not interrupt them), so it bounds the time a graceful stop takes.
  int keep_alive_timeout_s = 2;
};

class HttpServer {
 public:
  HttpServer(JobService& service, HttpOptions options);
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Binds host:port; returns the port. Throws ditserve::Error naming host and port.
  int bind();
  // Accepts connections until stop(). REQUIRES: bind() succeeded.
  void serve();
  // Thread-safe and idempotent; serve() returns soon after.
  void stop();

 private:
  JobService& service_;
  HttpOptions options_;
  std::unique_ptr<httplib::Server> server_;
  int listen_fd_ = -1;
};

}  // namespace ditserve::server
