// /v1/videos: OpenAI's video API (create, retrieve, list, delete, content) and ditserve's
// progress stream. DELETE removes the video whatever its status (a queued or running one
// is cancelled first); from its answer on, the id is unknown (404).

#include <memory>

#include "server/routes.h"
#include "server/video_object.h"

namespace ditserve::server {
namespace {

constexpr auto kKeepAliveEvery = std::chrono::seconds(10);

void list_videos(const httplib::Request& req, httplib::Response& res, JobService& service) {
  const long limit = query_integer(req, "limit", 1, 100, 20);
  std::string order = req.has_param("order") ? req.get_param_value("order") : "desc";
  if (order != "asc" && order != "desc")
    throw bad_request("order", "order: expected 'asc' or 'desc', got '" + order + "'");
  std::optional<std::string> after;
  if (req.has_param("after")) after = req.get_param_value("after");
  const JobPage page = service.list(JobKind::kVideo, static_cast<std::size_t>(limit), after, order == "asc");
  nlohmann::json data = nlohmann::json::array();
  for (const Job& job : page.jobs) data.push_back(video_object(job));
  nlohmann::json body = {{"object", "list"}, {"data", data}, {"has_more", page.has_more}};
  body["first_id"] = page.jobs.empty() ? nlohmann::json(nullptr) : nlohmann::json(page.jobs.front().spec.id);
  body["last_id"] = page.jobs.empty() ? nlohmann::json(nullptr) : nlohmann::json(page.jobs.back().spec.id);
  send_json(res, 200, body);
}

// One call of the stream's content provider: what is new since `next`, else a keep-alive
// after waiting; false when the client has gone.
bool send_events(JobService& service, const std::string& id, std::size_t& next, httplib::DataSink& sink) {
  const EventHub& hub = service.events();
  std::vector<JobEvent> events = hub.wait(id, next, std::chrono::milliseconds(0));
  if (events.empty() && !hub.closed()) {
    const Job job = service.get(id, JobKind::kVideo);
    if (is_terminal_phase(job.progress.phase)) {
      // Finished before this process saw its events (a restart): its final state.
      const std::string frame =
          sse_frame(next, "phase", event_object(job, job.progress, "phase").dump());
      sink.write(frame.data(), frame.size());
      sink.done();
      return true;
    }
    events = hub.wait(id, next, kKeepAliveEvery);
  }
  if (hub.closed()) {
    sink.done();
    return true;
  }
  if (events.empty()) return sink.write(kSseKeepAlive, std::char_traits<char>::length(kSseKeepAlive));
  const Job job = service.get(id, JobKind::kVideo);
  for (const JobEvent& e : events) {
    const std::string frame =
        sse_frame(e.index, e.type, event_object(job, e.progress, e.type).dump());
    if (!sink.write(frame.data(), frame.size())) return false;  // the client left
    next = e.index + 1;
    if (is_terminal_phase(e.progress.phase)) {
      sink.done();
      break;
    }
  }
  return true;
}

// Server-sent events: what the job has done so far (from Last-Event-ID + 1 when the client
// reconnects), then each event as it happens, until the terminal one.
void stream_events(const httplib::Request& req, httplib::Response& res, JobService& service) {
  const std::string id = req.matches[1];
  service.get(id, JobKind::kVideo);  // 404 before the stream starts
  auto next = std::make_shared<std::size_t>(0);
  if (req.has_header("Last-Event-ID")) {
    try {
      *next = std::stoul(req.get_header_value("Last-Event-ID")) + 1;
    } catch (const std::exception&) {
      throw bad_request("Last-Event-ID", "Last-Event-ID: expected an event number");
    }
  }
  res.set_header("Cache-Control", "no-cache");
  res.set_chunked_content_provider(
      "text/event-stream", [&service, id, next](std::size_t, httplib::DataSink& sink) {
        try {
          return send_events(service, id, *next, sink);
        } catch (const std::exception&) {
          return false;  // ends the stream; the client may reconnect with Last-Event-ID
        }
      });
}

}  // namespace

void add_video_routes(httplib::Server& http, JobService& service) {
  http.Post("/v1/videos", [&service](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      const GenerationParams params = parse_video_request(body_fields(req), service.models(), service.limits());
      send_json(res, 200, video_object(service.create(params, JobKind::kVideo)));
    });
  });
  http.Get("/v1/videos", [&service](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { list_videos(req, res, service); });
  });
  http.Get(R"(/v1/videos/([^/]+))", [&service](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { send_json(res, 200, video_object(service.get(req.matches[1], JobKind::kVideo))); });
  });
  http.Delete(R"(/v1/videos/([^/]+))", [&service](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      const std::string id = req.matches[1];
      service.remove(id, JobKind::kVideo);
      send_json(res, 200, {{"id", id}, {"object", "video.deleted"}, {"deleted", true}});
    });
  });
  http.Get(R"(/v1/videos/([^/]+)/content)", [&service](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      if (req.has_param("variant") && req.get_param_value("variant") != "video")
        throw bad_request("variant", "variant: only 'video' is available, got '" +
                                         req.get_param_value("variant") + "'");
      const std::filesystem::path file = service.output(req.matches[1], JobKind::kVideo);
      res.status = 200;
      res.set_content(read_file(file, "video_id"),
                      file.extension() == ".y4m" ? "video/x-yuv4mpeg" : "video/mp4");
    });
  });
  http.Get(R"(/v1/videos/([^/]+)/events)", [&service](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { stream_events(req, res, service); });
  });
}

}  // namespace ditserve::server
