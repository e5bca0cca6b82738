#include <fstream>
#include <iterator>

#include "server/routes.h"

namespace ditserve::server {

void send_json(httplib::Response& res, int status, const nlohmann::json& body) {
  res.status = status;
  res.set_content(body.dump(), "application/json");
}

void send_error(httplib::Response& res, const ApiError& error) {
  send_json(res, error.status, error.body());
  if (error.retry_after_s) res.set_header("Retry-After", std::to_string(*error.retry_after_s));
}

void guarded(httplib::Response& res, const std::function<void()>& handler) {
  try {
    handler();
  } catch (const ApiError& e) {
    send_error(res, e);
  } catch (const InvalidArgument& e) {
    send_error(res, from_invalid_argument(e));
  } catch (const std::exception& e) {
    send_error(res, ApiError(500, "server_error", e.what(), "", "internal_error"));
  }
}

Fields body_fields(const httplib::Request& req) {
  if (req.is_multipart_form_data()) {
    Fields f;
    f.from_form = true;
    for (const auto& [name, part] : req.files) {
      if (!part.filename.empty())
        throw bad_request(name, name + ": file uploads are not supported", "unsupported_parameter");
      if (f.values.contains(name)) throw bad_request(name, name + ": given more than once");
      f.values[name] = part.content;
    }
    return f;
  }
  const std::string type = req.get_header_value("Content-Type");
  if (!type.empty() && type.rfind("application/json", 0) != 0)
    throw ApiError(415, "invalid_request_error",
                   "Content-Type must be application/json or multipart/form-data, got '" + type + "'",
                   "Content-Type", "unsupported_media_type");
  return json_fields(req.body);
}

long query_integer(const httplib::Request& req, const std::string& name, long lo, long hi, long fallback) {
  if (!req.has_param(name)) return fallback;
  const std::string text = req.get_param_value(name);
  std::size_t used = 0;
  long v = 0;
  try {
    v = std::stol(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size() || v < lo || v > hi)
    throw bad_request(name, name + ": expected an integer in [" + std::to_string(lo) + ", " +
                                std::to_string(hi) + "], got '" + text + "'");
  return v;
}

std::string read_file(const std::filesystem::path& path, const std::string& param) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw not_found(param, "the output file is missing");
  return {std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
}

}  // namespace ditserve::server
