#include "server/http_server.h"

#include <sys/socket.h>

#include "server/routes.h"

namespace ditserve::server {
namespace {

// Errors httplib answers by itself (no route, body too large, bad request line) get the
// same error object as ours.
ApiError transport_error(const httplib::Request& req, int status, std::size_t max_body) {
  switch (status) {
    case 404:
      return ApiError(404, "invalid_request_error", "no route for " + req.method + " " + req.path, "",
                      "unknown_url");
    case 413:
      return ApiError(413, "invalid_request_error",
                      "the request body exceeds " + std::to_string(max_body) + " bytes", "",
                      "body_too_large");
    case 405:
      return ApiError(405, "invalid_request_error", req.method + " is not allowed on " + req.path, "",
                      "method_not_allowed");
    default:
      return ApiError(status, status >= 500 ? "server_error" : "invalid_request_error",
                      "HTTP " + std::to_string(status), "", "");
  }
}

}  // namespace

HttpServer::HttpServer(JobService& service, HttpOptions options)
    : service_(service), options_(std::move(options)), server_(std::make_unique<httplib::Server>()) {
  httplib::Server& http = *server_;
  const int threads = options_.threads;
  http.new_task_queue = [threads] { return new httplib::ThreadPool(static_cast<std::size_t>(threads)); };
  http.set_payload_max_length(options_.max_body_bytes);
  http.set_read_timeout(options_.read_timeout_s, 0);
  http.set_write_timeout(options_.write_timeout_s, 0);
  http.set_keep_alive_max_count(1000);
  http.set_keep_alive_timeout(options_.keep_alive_timeout_s);
  http.set_tcp_nodelay(true);
  // Keeps the listening socket so bind() can deepen its backlog; otherwise what
  // httplib::default_socket_options does.
  http.set_socket_options([this](socket_t sock) {
    httplib::default_socket_options(sock);
    listen_fd_ = sock;
  });
  const std::size_t max_body = options_.max_body_bytes;
  http.set_error_handler(httplib::Server::HandlerWithResponse(
      [max_body](const httplib::Request& req, httplib::Response& res) {
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        send_error(res, transport_error(req, res.status, max_body));
        return httplib::Server::HandlerResponse::Handled;
      }));
  http.set_exception_handler([](const httplib::Request&, httplib::Response& res, std::exception_ptr) {
    send_error(res, ApiError(500, "server_error", "internal error", "", "internal_error"));
  });
  add_video_routes(http, service_);
  add_image_routes(http, service_);
  add_system_routes(http, service_);
}

HttpServer::~HttpServer() { stop(); }

int HttpServer::bind() {
  int port = options_.port;
  bool ok = false;
  if (port == 0) {
    port = server_->bind_to_any_port(options_.host);
    ok = port > 0;
  } else {
    ok = server_->bind_to_port(options_.host, port);
  }
  if (!ok)
    throw Error("listen: cannot bind " + options_.host + ":" + std::to_string(options_.port) +
                " (in use, or not an address of this machine)");
  // cpp-httplib 0.11 listens with a backlog of 5: a burst of new connections (32 clients
  // starting at once) overflows it and waits for SYN retries, 1 s and more. Linux lets a
  // second listen() set a deeper one.
  if (listen_fd_ >= 0) ::listen(listen_fd_, SOMAXCONN);
  return port;
}

void HttpServer::serve() { server_->listen_after_bind(); }

void HttpServer::stop() {
  service_.begin_shutdown();  // ends event streams and waits that would hold up the stop
  server_->stop();
}

}  // namespace ditserve::server
