#include "pipeline/tokenizer.h"

#include <sentencepiece_processor.h>

#include <fstream>
#include <iterator>
#include <utility>

#include "tensor/error.h"

namespace ditserve {

Tokenizer Tokenizer::from_bytes(std::string_view serialized, std::int64_t max_tokens) {
  return Tokenizer(serialized, max_tokens, "the built-in tokenizer");
}

Tokenizer Tokenizer::from_file(const std::filesystem::path& path, std::int64_t max_tokens) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw InvalidArgument("tokenizer: cannot read '" + path.string() + "'");
  std::string bytes((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
  return Tokenizer(bytes, max_tokens, path.string());
}

Tokenizer::Tokenizer(std::string_view serialized, std::int64_t max_tokens, std::string source)
    : sp_(std::make_unique<sentencepiece::SentencePieceProcessor>()),
      max_tokens_(max_tokens),
      source_(std::move(source)) {
  DITSERVE_CHECK(max_tokens >= 2, "tokenizer: max_tokens must be >= 2, got ", max_tokens);
  const auto status = sp_->LoadFromSerializedProto(serialized);
  if (!status.ok())
    throw InvalidArgument("tokenizer: " + source_ + " is not a SentencePiece model (" +
                          status.ToString() + ")");
  DITSERVE_CHECK(sp_->pad_id() == kPadId && sp_->eos_id() == kEosId, "tokenizer: ", source_,
                 " does not use T5's special ids <pad>=0 and </s>=1 (has <pad>=", sp_->pad_id(),
                 ", </s>=", sp_->eos_id(), ")");
}

Tokenizer::Tokenizer(Tokenizer&&) noexcept = default;
Tokenizer& Tokenizer::operator=(Tokenizer&&) noexcept = default;
Tokenizer::~Tokenizer() = default;

std::vector<std::int32_t> Tokenizer::encode(std::string_view prompt) const {
  std::vector<int> pieces;
  const auto status = sp_->Encode(prompt, &pieces);
  if (!status.ok()) throw InvalidArgument("prompt: cannot tokenize (" + status.ToString() + ")");
  if (pieces.empty())
    throw InvalidArgument("prompt: must not be empty (give a text of 1 to " +
                          std::to_string(max_tokens_ - 1) + " tokens)");
  const auto count = static_cast<std::int64_t>(pieces.size()) + 1;
  if (count > max_tokens_)
    throw InvalidArgument("prompt: " + std::to_string(count) + " tokens (with </s>), at most " +
                          std::to_string(max_tokens_) + " allowed");
  std::vector<std::int32_t> ids(pieces.begin(), pieces.end());
  ids.push_back(kEosId);
  return ids;
}

std::string Tokenizer::decode(const std::vector<std::int32_t>& ids) const {
  std::vector<int> pieces;
  for (const std::int32_t id : ids)
    if (id != kEosId && id != kPadId) pieces.push_back(id);
  std::string text;
  const auto status = sp_->Decode(pieces, &text);
  if (!status.ok()) throw InvalidArgument("tokenizer: cannot decode ids with " + source_ + " (" + status.ToString() + ")");
  return text;
}

std::int64_t Tokenizer::vocab_size() const { return sp_->GetPieceSize(); }

}  // namespace ditserve
