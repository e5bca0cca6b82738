#pragma once
// A WeightSource serving another source's tensors under other names: for checking that a
// model loads two public namings of the same weights to the same function.

#include <map>
#include <string>
#include <vector>

#include "models/weights.h"
#include "tensor/error.h"

namespace ditserve::testing {

class RenamedSource final : public WeightSource {
 public:
  // Spec i of `names` is served as the inner source's spec i of `inner_names` (same shapes).
  RenamedSource(const WeightSource& inner, const std::vector<ParamSpec>& names,
                const std::vector<ParamSpec>& inner_names)
      : inner_(inner) {
    DITSERVE_CHECK(names.size() == inner_names.size(), "RenamedSource: ", names.size(),
                   " names for ", inner_names.size(), " tensors");
    for (std::size_t i = 0; i < names.size(); ++i) {
      DITSERVE_CHECK(names[i].shape == inner_names[i].shape, "RenamedSource: ", names[i].name,
                     " and ", inner_names[i].name, " differ in shape");
      map_.emplace(names[i].name, inner_names[i].name);
    }
  }
  bool contains(const std::string& name) const override { return map_.contains(name); }
  Tensor get(const std::string& name, const Shape& expected) const override {
    const auto it = map_.find(name);
    DITSERVE_CHECK(it != map_.end(), "tensor '", name, "' not found in ", describe());
    return inner_.get(it->second, expected);
  }
  std::string describe() const override { return "renamed " + inner_.describe(); }

 private:
  const WeightSource& inner_;
  std::map<std::string, std::string> map_;
};

}  // namespace ditserve::testing
