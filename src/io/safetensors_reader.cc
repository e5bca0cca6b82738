#include <bit>
#include <cstring>
#include <nlohmann/json.hpp>
#include <set>

#include "io/mapped_file.h"
#include "io/safetensors.h"
#include "io/safetensors_dtype.h"
#include "tensor/error.h"

namespace ditserve {

static_assert(std::endian::native == std::endian::little,
              "safetensors stores little-endian data; big-endian hosts need byte swapping");

namespace {

using json = nlohmann::json;

// The reference implementation refuses headers above 100 MB; so do we.
constexpr std::uint64_t kMaxHeaderBytes = 100'000'000;
constexpr std::uint64_t kLengthBytes = 8;

struct Entry {
  TensorInfo info;
  std::uint64_t begin = 0;  // offset into the data buffer
};

std::string quoted(const std::string& name) { return "'" + name + "'"; }

std::uint64_t read_le_u64(const std::byte* p) {
  std::uint64_t value = 0;
  std::memcpy(&value, p, sizeof(value));
  return value;
}

// Parses `text`, recording the first top-level key that occurs twice (nlohmann keeps the
// last silently, which would hide a broken writer).
json parse_header(const std::string& file, std::string_view text) {
  std::set<std::string> seen;
  std::optional<std::string> duplicate;
  const json::parser_callback_t record = [&](int depth, json::parse_event_t event, json& parsed) {
    if (event == json::parse_event_t::key && depth == 1 && !duplicate) {
      const auto& key = parsed.get_ref<const std::string&>();
      if (!seen.insert(key).second) duplicate = key;
    }
    return true;
  };
  json header;
  try {
    header = json::parse(text.begin(), text.end(), record);
  } catch (const json::exception& e) {
    throw InvalidArgument(file + ": header is not valid JSON: " + e.what());
  }
  DITSERVE_CHECK(header.is_object(), file, ": header is not a JSON object");
  DITSERVE_CHECK(!duplicate, file, ": header names ", quoted(duplicate.value_or("")), " twice");
  return header;
}

std::uint64_t as_u64(const std::string& where, const char* field, const json& value) {
  DITSERVE_CHECK(value.is_number_integer(), where, ": ", field, " holds ", value.dump(),
                 ", not an integer");
  DITSERVE_CHECK(value.is_number_unsigned() || value.get<std::int64_t>() >= 0, where, ": ", field,
                 " holds negative ", value.dump());
  return value.get<std::uint64_t>();
}

const json& field(const std::string& where, const json& entry, const char* name) {
  const auto it = entry.find(name);
  DITSERVE_CHECK(it != entry.end(), where, ": missing field '", name, "'");
  return *it;
}

Entry parse_entry(const std::string& file, const std::string& name, const json& value,
                  std::uint64_t data_bytes) {
  const std::string where = file + ": tensor " + quoted(name);
  DITSERVE_CHECK(value.is_object(), where, ": entry is ", value.dump(), ", not an object");

  const json& dtype = field(where, value, "dtype");
  DITSERVE_CHECK(dtype.is_string(), where, ": dtype ", dtype.dump(), " is not a string");
  const auto format = find_safetensors_dtype(dtype.get_ref<const std::string&>());
  DITSERVE_CHECK(format.has_value(), where, ": unknown dtype ", dtype.dump());

  const json& shape = field(where, value, "shape");
  DITSERVE_CHECK(shape.is_array(), where, ": shape ", shape.dump(), " is not an array");
  Entry entry;
  entry.info.format_dtype = std::string(format->name);
  entry.info.dtype = format->dtype;
  std::uint64_t bytes = format->size;
  bool overflow = false;
  for (const json& dim : shape) {
    const std::uint64_t size = as_u64(where, "shape", dim);
    overflow = overflow || size > static_cast<std::uint64_t>(INT64_MAX) ||
               __builtin_mul_overflow(bytes, size, &bytes);
    entry.info.shape.push_back(static_cast<std::int64_t>(size));
  }
  DITSERVE_CHECK(!overflow, where, ": shape ", shape.dump(), " is too large");

  const json& offsets = field(where, value, "data_offsets");
  DITSERVE_CHECK(offsets.is_array() && offsets.size() == 2, where, ": data_offsets ",
                 offsets.dump(), " is not a [begin, end] pair");
  const std::uint64_t begin = as_u64(where, "data_offsets", offsets[0]);
  const std::uint64_t end = as_u64(where, "data_offsets", offsets[1]);
  DITSERVE_CHECK(begin <= end, where, ": data_offsets ", offsets.dump(), " end before they begin");
  DITSERVE_CHECK(end <= data_bytes, where, ": data_offsets ", offsets.dump(), " reach past the ",
                 data_bytes, "-byte data buffer (truncated file?)");
  DITSERVE_CHECK(end - begin == bytes, where, ": data_offsets ", offsets.dump(), " hold ",
                 end - begin, " bytes but ", format->name, shape_str(entry.info.shape), " needs ",
                 bytes);
  entry.info.nbytes = bytes;
  entry.begin = begin;
  return entry;
}

std::map<std::string, std::string> parse_metadata(const std::string& file, const json& value) {
  DITSERVE_CHECK(value.is_object(), file, ": __metadata__ is not an object");
  std::map<std::string, std::string> metadata;
  for (const auto& [key, text] : value.items()) {
    DITSERVE_CHECK(text.is_string(), file, ": __metadata__ ", quoted(key), " holds ", text.dump(),
                   ", not a string");
    metadata.emplace(key, text.get<std::string>());
  }
  return metadata;
}

}  // namespace

struct SafetensorsFile::Impl {
  std::shared_ptr<const MappedFile> mapping;
  const std::byte* data = nullptr;  // start of the data buffer
  std::map<std::string, Entry, std::less<>> entries;
  std::map<std::string, std::string> metadata;
};

SafetensorsFile::SafetensorsFile(const std::filesystem::path& path) {
  auto impl = std::make_shared<Impl>();
  impl->mapping = std::make_shared<const MappedFile>(path);
  const MappedFile& mapping = *impl->mapping;
  const std::string file = path.string();
  const std::uint64_t size = mapping.size();

  DITSERVE_CHECK(size >= kLengthBytes, file, ": file is ", size,
                 " bytes, too short for the 8-byte header length (truncated file?)");
  const std::uint64_t header_bytes = read_le_u64(mapping.data());
  DITSERVE_CHECK(header_bytes <= kMaxHeaderBytes, file, ": header length ", header_bytes,
                 " exceeds the limit of ", kMaxHeaderBytes, " bytes (not a safetensors file?)");
  DITSERVE_CHECK(header_bytes <= size - kLengthBytes, file, ": header length ", header_bytes,
                 " exceeds the ", size - kLengthBytes, " bytes after it (truncated file?)");

  const auto* text = reinterpret_cast<const char*>(mapping.data() + kLengthBytes);
  const json header = parse_header(file, std::string_view(text, header_bytes));
  const std::uint64_t data_bytes = size - kLengthBytes - header_bytes;
  impl->data = mapping.data() + kLengthBytes + header_bytes;
  for (const auto& [name, value] : header.items()) {
    if (name == "__metadata__") {
      impl->metadata = parse_metadata(file, value);
    } else {
      impl->entries.emplace(name, parse_entry(file, name, value, data_bytes));
    }
  }
  impl_ = std::move(impl);
}

const std::filesystem::path& SafetensorsFile::path() const { return impl_->mapping->path(); }

std::vector<std::string> SafetensorsFile::names() const {
  std::vector<std::string> names;
  names.reserve(impl_->entries.size());
  for (const auto& [name, entry] : impl_->entries) names.push_back(name);
  return names;
}

bool SafetensorsFile::contains(const std::string& name) const {
  return impl_->entries.contains(name);
}

const TensorInfo& SafetensorsFile::info(const std::string& name) const {
  const auto it = impl_->entries.find(name);
  DITSERVE_CHECK(it != impl_->entries.end(), "tensor ", quoted(name), " not found in ",
                 path().string());
  return it->second.info;
}

const std::map<std::string, std::string>& SafetensorsFile::metadata() const {
  return impl_->metadata;
}

Tensor SafetensorsFile::get(const std::string& name) const {
  const TensorInfo& info = this->info(name);
  DITSERVE_CHECK(info.dtype.has_value(), "tensor ", quoted(name), " in ", path().string(),
                 " has dtype ", info.format_dtype, ", which ditserve does not support");
  const DType dtype = *info.dtype;
  const std::byte* bytes = impl_->data + impl_->entries.find(name)->second.begin;
  if (reinterpret_cast<std::uintptr_t>(bytes) % dtype_size(dtype) != 0) {
    Tensor copy = Tensor::empty_host(info.shape, dtype);
    if (info.nbytes > 0) std::memcpy(copy.raw_data(), bytes, info.nbytes);
    return copy;
  }
  // The release callback owns a reference to the mapping: it lives as long as the tensor.
  auto storage = std::make_shared<Storage>(const_cast<std::byte*>(bytes), info.nbytes,
                                           Device::cpu(0), [mapping = impl_->mapping] {});
  return Tensor(std::move(storage), dtype, info.shape, contiguous_strides(info.shape));
}

Tensor SafetensorsFile::get(const std::string& name, const Shape& expected_shape) const {
  const TensorInfo& info = this->info(name);
  DITSERVE_CHECK(info.shape == expected_shape, "tensor ", quoted(name), " in ", path().string(),
                 ": shape ", shape_str(info.shape), " expected ", shape_str(expected_shape));
  return get(name);
}

}  // namespace ditserve
