// /v1/images: OpenAI's image generation (synchronous: the answer carries the image) as a
// one-frame job, plus ditserve's GET of the job and of its PNG (what response_format
// "url" points to).

#include "server/routes.h"
#include "server/video_object.h"

namespace ditserve::server {
namespace {

constexpr auto kMaxWait = std::chrono::minutes(10);

std::string base64(const std::string& bytes) {
  static constexpr char kAlphabet[] =
      "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
  std::string out;
  out.reserve((bytes.size() + 2) / 3 * 4);
  std::size_t i = 0;
  for (; i + 2 < bytes.size(); i += 3) {
    const unsigned v = (static_cast<unsigned char>(bytes[i]) << 16) |
                       (static_cast<unsigned char>(bytes[i + 1]) << 8) |
                       static_cast<unsigned char>(bytes[i + 2]);
    for (int s : {18, 12, 6, 0}) out += kAlphabet[(v >> s) & 63];
  }
  if (i < bytes.size()) {
    unsigned v = static_cast<unsigned char>(bytes[i]) << 16;
    if (i + 1 < bytes.size()) v |= static_cast<unsigned char>(bytes[i + 1]) << 8;
    out += kAlphabet[(v >> 18) & 63];
    out += kAlphabet[(v >> 12) & 63];
    out += i + 1 < bytes.size() ? kAlphabet[(v >> 6) & 63] : '=';
    out += '=';
  }
  return out;
}

// Blocks until the job is terminal; throws 503 when the server stops first, 504 after kMaxWait.
Job wait_finished(JobService& service, const std::string& id) {
  const auto give_up = std::chrono::steady_clock::now() + kMaxWait;
  std::size_t next = 0;
  while (true) {
    const Job job = service.get(id, JobKind::kImage, "image_id");
    if (is_terminal_phase(job.progress.phase)) return job;
    if (service.events().closed())
      throw ApiError(503, "server_error", "the server is shutting down; " + id + " resumes after restart", "", "shutting_down");
    if (std::chrono::steady_clock::now() > give_up)
      throw ApiError(504, "server_error", id + " did not finish in time; GET /v1/images/" + id + " later", "", "timeout");
    for (const JobEvent& e : service.events().wait(id, next, std::chrono::seconds(1))) next = e.index + 1;
  }
}

}  // namespace

void add_image_routes(httplib::Server& http, JobService& service) {
  http.Post("/v1/images/generations", [&service](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      const ImageParams params = parse_image_request(body_fields(req), service.models(), service.limits());
      const Job job = wait_finished(service, service.create(params.generation, JobKind::kImage).spec.id);
      if (job.progress.phase != runtime::JobPhase::kCompleted)
        throw ApiError(500, "server_error",
                       "image generation failed: " + (job.progress.error.empty() ? std::string(phase_name(job.progress.phase)) : job.progress.error),
                       "", "generation_failed");
      nlohmann::json item;
      if (params.response_format == "url") {
        item["url"] = "http://" + req.get_header_value("Host") + "/v1/images/" + job.spec.id + "/content";
      } else {
        item["b64_json"] = base64(read_file(job.spec.output, "image_id"));
      }
      item["revised_prompt"] = nullptr;
      send_json(res, 200, {{"created", static_cast<std::int64_t>(job.created_at)},
                           {"id", job.spec.id},
                           {"data", nlohmann::json::array({item})}});
    });
  });
  http.Get(R"(/v1/images/([^/]+))", [&service](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] { send_json(res, 200, video_object(service.get(req.matches[1], JobKind::kImage, "image_id"))); });
  });
  http.Get(R"(/v1/images/([^/]+)/content)", [&service](const httplib::Request& req, httplib::Response& res) {
    guarded(res, [&] {
      const std::filesystem::path file = service.output(req.matches[1], JobKind::kImage);
      res.status = 200;
      res.set_content(read_file(file, "image_id"), "image/png");
    });
  });
}

}  // namespace ditserve::server
