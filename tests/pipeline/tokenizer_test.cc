#include "pipeline/tokenizer.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "tensor/error.h"

namespace ditserve {
namespace {

Tokenizer tiny(std::int64_t max_tokens = 32) {
  return Tokenizer::from_bytes(tiny_tokenizer_model(), max_tokens);
}

// The message of the InvalidArgument `f` throws ("" if none).
template <typename F>
std::string error_of(F&& f) {
  try {
    f();
  } catch (const InvalidArgument& e) {
    return e.what();
  }
  return "";
}

TEST(Tokenizer, RoundTripEndsWithEos) {
  const Tokenizer t = tiny();
  const std::string prompt = "a red fox runs through a snowy forest at dawn";
  const std::vector<std::int32_t> ids = t.encode(prompt);
  ASSERT_GE(ids.size(), 3u);
  EXPECT_EQ(ids.back(), Tokenizer::kEosId);
  for (std::size_t i = 0; i + 1 < ids.size(); ++i) {
    EXPECT_NE(ids[i], Tokenizer::kPadId);
    EXPECT_NE(ids[i], Tokenizer::kEosId);
    EXPECT_LT(ids[i], t.vocab_size());
  }
  EXPECT_EQ(t.decode(ids), prompt);
  EXPECT_EQ(t.encode(prompt), ids);  // deterministic
}

TEST(Tokenizer, NormalisesWhitespaceLikeT5) {
  const Tokenizer t = tiny();
  EXPECT_EQ(t.encode("  a   red fox "), t.encode("a red fox"));
}

TEST(Tokenizer, TinyModelHasT5SpecialIds) {
  const Tokenizer t = tiny();
  EXPECT_GT(t.vocab_size(), 100);
  EXPECT_LE(t.vocab_size(), 512);  // fits the tiny T5 vocabulary
  EXPECT_EQ(t.decode({Tokenizer::kEosId, Tokenizer::kPadId}), "");
}

TEST(Tokenizer, RejectsEmptyPrompt) {
  const Tokenizer t = tiny();
  for (const char* p : {"", "   "}) {
    const std::string msg = error_of([&] { t.encode(p); });
    EXPECT_NE(msg.find("prompt"), std::string::npos) << "'" << p << "': " << msg;
    EXPECT_NE(msg.find("empty"), std::string::npos) << msg;
  }
}

TEST(Tokenizer, LimitCountsEos) {
  const std::string prompt = "a cat sleeps on a sunny windowsill while rain falls outside";
  const auto n = static_cast<std::int64_t>(tiny().encode(prompt).size());
  EXPECT_EQ(tiny(n).encode(prompt).size(), static_cast<std::size_t>(n));  // exactly fits
  const std::string msg = error_of([&] { tiny(n - 1).encode(prompt); });
  EXPECT_NE(msg.find("prompt"), std::string::npos) << msg;
  EXPECT_NE(msg.find("at most " + std::to_string(n - 1)), std::string::npos) << msg;
}

TEST(Tokenizer, RejectsOverLongPromptAtT5Limit) {
  std::string prompt;
  for (int i = 0; i < 200; ++i) prompt += "a horse gallops ";
  const std::string msg = error_of([&] { tiny(300).encode(prompt); });
  EXPECT_NE(msg.find("prompt"), std::string::npos) << msg;
  EXPECT_NE(msg.find("300"), std::string::npos) << msg;
}

TEST(Tokenizer, LoadsFromFile) {
  const auto path = std::filesystem::temp_directory_path() / "ditserve_tokenizer_test.model";
  {
    std::ofstream out(path, std::ios::binary);
    const std::string_view bytes = tiny_tokenizer_model();
    out.write(bytes.data(), static_cast<std::streamsize>(bytes.size()));
  }
  const Tokenizer from_file = Tokenizer::from_file(path, 32);
  std::filesystem::remove(path);
  EXPECT_EQ(from_file.encode("a dragon flies over a castle"), tiny().encode("a dragon flies over a castle"));
}

TEST(Tokenizer, RejectsBrokenModels) {
  EXPECT_NE(error_of([] { Tokenizer::from_bytes("not a model", 32); }).find("tokenizer"),
            std::string::npos);
  EXPECT_NE(error_of([] { Tokenizer::from_file("/nonexistent/spiece.model", 32); })
                .find("/nonexistent/spiece.model"),
            std::string::npos);
}

}  // namespace
}  // namespace ditserve
