#pragma once
// Prompt -> token ids with T5's conventions: SentencePiece pieces, then </s> (id 1);
// padding id 0 (the encoder takes lengths, so ids are returned unpadded). A prompt
// that does not fit is an error rather than silently truncated (Open-Sora truncates).

#include <cstdint>
#include <filesystem>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

namespace sentencepiece {
class SentencePieceProcessor;
}

namespace ditserve {

class Tokenizer {
 public:
  static constexpr std::int32_t kPadId = 0;
  static constexpr std::int32_t kEosId = 1;

  // A serialized SentencePiece ModelProto (e.g. tiny_tokenizer_model()) or a
  // spiece.model file. Throws InvalidArgument naming the tokenizer when the model does
  // not parse or does not use T5's ids (<pad> 0, </s> 1). REQUIRES: max_tokens >= 2.
  static Tokenizer from_bytes(std::string_view serialized, std::int64_t max_tokens);
  static Tokenizer from_file(const std::filesystem::path& path, std::int64_t max_tokens);

  Tokenizer(Tokenizer&&) noexcept;
  Tokenizer& operator=(Tokenizer&&) noexcept;
  ~Tokenizer();

  // Ids of `prompt` ending with </s>. Throws InvalidArgument naming "prompt" when it is
  // empty (or only spaces) or needs more than max_tokens() ids.
  std::vector<std::int32_t> encode(std::string_view prompt) const;
  // Text of `ids`; special ids (</s>, padding) are dropped.
  std::string decode(const std::vector<std::int32_t>& ids) const;

  std::int64_t vocab_size() const;
  std::int64_t max_tokens() const { return max_tokens_; }

 private:
  Tokenizer(std::string_view serialized, std::int64_t max_tokens, std::string source);

  std::unique_ptr<sentencepiece::SentencePieceProcessor> sp_;
  std::int64_t max_tokens_ = 0;
  std::string source_;  // for error messages
};

// The `tiny` model's tokenizer (built into the binary, see src/pipeline/CMakeLists.txt).
std::string_view tiny_tokenizer_model();

}  // namespace ditserve
