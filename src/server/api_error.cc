#include "server/api_error.h"

#include <cctype>
#include <map>

namespace ditserve::server {

nlohmann::json ApiError::body() const {
  nlohmann::json error = {{"message", what()}, {"type", type}};
  error["param"] = param.empty() ? nlohmann::json(nullptr) : nlohmann::json(param);
  error["code"] = code.empty() ? nlohmann::json(nullptr) : nlohmann::json(code);
  return {{"error", error}};
}

ApiError bad_request(const std::string& param, const std::string& message,
                     const std::string& code) {
  return ApiError(400, "invalid_request_error", message, param, code);
}

ApiError not_found(const std::string& param, const std::string& message) {
  return ApiError(404, "invalid_request_error", message, param, "not_found");
}

ApiError from_invalid_argument(const InvalidArgument& e) {
  static const std::map<std::string, std::string> kApiNames = {
      {"frames", "num_frames"}, {"guidance", "guidance_scale"}};
  const std::string message = e.what();
  const auto colon = message.find(':');
  std::string field;
  if (colon != std::string::npos && colon > 0) {
    field = message.substr(0, colon);
    for (const char c : field) {
      if (!(std::isalnum(static_cast<unsigned char>(c)) || c == '_' || c == '.')) {
        field.clear();
        break;
      }
    }
  }
  std::string text = message;
  if (const auto it = kApiNames.find(field); it != kApiNames.end()) {
    text = it->second + message.substr(colon);
    field = it->second;
  }
  return bad_request(field, text);
}

}  // namespace ditserve::server
