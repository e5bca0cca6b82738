// GET /health, /v1/models[/{id}] (OpenAI's model objects) and /metrics (Prometheus).

#include "server/routes.h"

namespace ditserve::server {
namespace {

nlohmann::json model_object(const std::string& name) {
  return {{"id", name}, {"object", "model"}, {"created", 0}, {"owned_by", "ditserve"}};
}

}  // namespace

void add_system_routes(httplib::Server& http, JobService& service) {
  http.Get("/health", [&service](const httplib::Request&, httplib::Response& res) {
    guarded(res, [&] {
      const bool stopping = service.shutting_down();
      send_json(res, stopping ? 503 : 200,
                {{"status", stopping ? "shutting_down" : "ok"},
                 {"models", service.models()},
                 {"queued", service.queued()}});
    });
  });
  http.Get("/v1/models", [&service](const httplib::Request&, httplib::Response& res) {
    guarded(res, [&] {
      nlohmann::json data = nlohmann::json::array();
      for (const std::string& m : service.models()) data.push_back(model_object(m));
      send_json(res, 200, {{"object", "list"}, {"data", data}});
    });
  });
  http.Get(R"(/v1/models/([^/]+))", [&service](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      const std::string name = req.matches[1];
      for (const std::string& m : service.models())
        if (m == name) return send_json(res, 200, model_object(m));
      throw not_found("model", "model: no model named '" + name + "'");
    });
  });
  http.Get("/metrics", [&service](const httplib::Request&, httplib::Response& res) {
    guarded(res, [&] {
      res.status = 200;
      res.set_content(service.metrics_text(), "text/plain; version=0.0.4; charset=utf-8");
    });
  });
}

}  // namespace ditserve::server
