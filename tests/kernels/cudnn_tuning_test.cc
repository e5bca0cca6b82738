// How the CUDA backend reads its cuDNN plan options (kernels/cuda/cudnn_graph.h):
// DITSERVE_CUDNN_AUTOTUNE and DITSERVE_CUDNN_DEBUG, once per CudnnPlanCache. Host only (no
// GPU needed); the timing of attention's candidate plans is checked on a GPU by gpu_check
// (tools/gpu_check/cases_math.cc, "twice: plan cache hit"). CUDA builds only.

#ifdef DITSERVE_WITH_CUDA

#include <gmock/gmock.h>
#include <gtest/gtest.h>

#include <cstdlib>
#include <optional>
#include <string>

#include "kernels/cuda/cudnn_graph.h"
#include "tensor/error.h"

namespace ditserve::cuda {
namespace {

using ::testing::HasSubstr;
using ::testing::ThrowsMessage;

// Sets (or, with nullptr, unsets) an environment variable for one scope.
class ScopedEnv {
 public:
  ScopedEnv(const char* name, const char* value) : name_(name) {
    if (const char* old = std::getenv(name)) saved_ = old;
    set(value);
  }
  ~ScopedEnv() { set(saved_ ? saved_->c_str() : nullptr); }
  ScopedEnv(const ScopedEnv&) = delete;
  ScopedEnv& operator=(const ScopedEnv&) = delete;

  void set(const char* value) {
    if (value != nullptr) {
      setenv(name_, value, 1);
    } else {
      unsetenv(name_);
    }
  }

 private:
  const char* name_;
  std::optional<std::string> saved_;
};

TEST(CudnnTuningOptionsTest, DefaultsToNoAutotuneWithoutDebug) {
  ScopedEnv autotune("DITSERVE_CUDNN_AUTOTUNE", nullptr);
  ScopedEnv debug("DITSERVE_CUDNN_DEBUG", nullptr);
  const CudnnTuningOptions options = CudnnTuningOptions::from_env();
  EXPECT_FALSE(options.autotune);  // opt-in until checked on a GPU
  EXPECT_FALSE(options.debug);
}

TEST(CudnnTuningOptionsTest, ReadsBothVariables) {
  ScopedEnv autotune("DITSERVE_CUDNN_AUTOTUNE", "0");
  ScopedEnv debug("DITSERVE_CUDNN_DEBUG", "1");
  CudnnTuningOptions options = CudnnTuningOptions::from_env();
  EXPECT_FALSE(options.autotune);
  EXPECT_TRUE(options.debug);
  // Debug keeps its old reading (any value turns it on) except that "0" and "" are off.
  debug.set("0");
  EXPECT_FALSE(CudnnTuningOptions::from_env().debug);
  debug.set("");
  EXPECT_FALSE(CudnnTuningOptions::from_env().debug);
  debug.set("yes");
  EXPECT_TRUE(CudnnTuningOptions::from_env().debug);
  autotune.set("1");
  EXPECT_TRUE(CudnnTuningOptions::from_env().autotune);
}

TEST(CudnnTuningOptionsTest, RejectsAMalformedAutotuneFlag) {
  ScopedEnv autotune("DITSERVE_CUDNN_AUTOTUNE", "off");
  EXPECT_THAT([] { CudnnTuningOptions::from_env(); },
              ThrowsMessage<InvalidArgument>(HasSubstr("DITSERVE_CUDNN_AUTOTUNE")));
}

TEST(CudnnPlanCacheTest, ReadsItsOptionsWhenMadeAndCountsKeys) {
  ScopedEnv autotune("DITSERVE_CUDNN_AUTOTUNE", "0");
  CudnnPlanCache cache;
  autotune.set("1");  // read once: a later change does not reach this cache
  EXPECT_FALSE(cache.options().autotune);
  EXPECT_EQ(cache.size(), 0u);
  cache.put("no engine", nullptr);
  EXPECT_TRUE(cache.contains("no engine"));
  EXPECT_EQ(cache.get("no engine"), nullptr);
  EXPECT_EQ(cache.size(), 1u);
  EXPECT_TRUE(CudnnPlanCache(CudnnTuningOptions{.autotune = true}).options().autotune);
}

}  // namespace
}  // namespace ditserve::cuda

#endif  // DITSERVE_WITH_CUDA
