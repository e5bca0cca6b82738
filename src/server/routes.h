#pragma once
// The server's routes, a file per resource, and the helpers they share. Private to
// server/: http_server.cc registers them.

#include <httplib.h>

#include <functional>
#include <nlohmann/json.hpp>
#include <string>

#include "server/api_error.h"
#include "server/generation_request.h"
#include "server/job_service.h"

namespace ditserve::server {

struct HttpOptions;

// POST/GET/DELETE /v1/videos..., GET /v1/videos/{id}/events (server-sent events).
void add_video_routes(httplib::Server& http, JobService& service);
// POST /v1/images/generations, GET /v1/images/{id}[/content].
void add_image_routes(httplib::Server& http, JobService& service);
// GET /health, /v1/models[/{id}], /metrics.
void add_system_routes(httplib::Server& http, JobService& service);

// Runs `handler`, turning an ApiError (and any other exception, as a 500) into an error
// response.
void guarded(httplib::Response& res, const std::function<void()>& handler);
void send_json(httplib::Response& res, int status, const nlohmann::json& body);
void send_error(httplib::Response& res, const ApiError& error);
// The request body as Fields: JSON (application/json or no Content-Type) or
// multipart/form-data; 415 for anything else, 400 for file parts and repeated fields.
Fields body_fields(const httplib::Request& req);
// A query parameter as an integer in [lo, hi]; `fallback` when absent.
long query_integer(const httplib::Request& req, const std::string& name, long lo, long hi, long fallback);
// The file's bytes; a 404 naming `param` when it cannot be read.
std::string read_file(const std::filesystem::path& path, const std::string& param);

}  // namespace ditserve::server
