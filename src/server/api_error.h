#pragma once
// The one place where failures become HTTP: an ApiError carries the status and the
// OpenAI-style error object {"error": {"message", "type", "param", "code"}}; ditserve's
// InvalidArgument ("field: why") becomes a 400 naming that field.

#include <optional>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "tensor/error.h"

namespace ditserve::server {

class ApiError : public std::runtime_error {
 public:
  ApiError(int status, std::string type, std::string message, std::string param = "",
           std::string code = "")
      : std::runtime_error(message),
        status(status),
        type(std::move(type)),
        param(std::move(param)),
        code(std::move(code)) {}

  int status;
  std::string type;   // "invalid_request_error", "not_found_error", "rate_limit_error", ...
  std::string param;  // the offending field, empty when none
  std::string code;   // machine-readable detail, empty when none
  std::optional<int> retry_after_s;  // sent as Retry-After (429)

  nlohmann::json body() const;
};

// 400 invalid_request_error naming `param`.
ApiError bad_request(const std::string& param, const std::string& message,
                     const std::string& code = "invalid_value");
// 404 naming the id parameter.
ApiError not_found(const std::string& param, const std::string& message);

// An InvalidArgument whose message starts with "field: " as a 400 naming the field, after
// renaming the engine's names to the API's (frames -> num_frames, guidance -> guidance_scale).
ApiError from_invalid_argument(const InvalidArgument& e);

}  // namespace ditserve::server
