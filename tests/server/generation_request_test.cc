// Parsing and validation of POST /v1/videos and /v1/images/generations bodies: every bad
// input is a 400 naming the field.

#include "server/generation_request.h"

#include <gtest/gtest.h>

#include "models/registry.h"
#include "server/api_error.h"

namespace ditserve::server {
namespace {

const std::vector<std::string> kModels = {"tiny"};

GenerationParams video(const std::string& json) {
  return parse_video_request(json_fields(json), kModels, RequestLimits{});
}

GenerationParams form(const std::map<std::string, std::string>& values) {
  Fields f;
  f.from_form = true;
  for (const auto& [k, v] : values) f.values[k] = v;
  return parse_video_request(f, kModels, RequestLimits{});
}

// The ApiError a body produces (status, param, code), or a failure when it parses.
ApiError video_error(const std::string& json) {
  try {
    video(json);
  } catch (const ApiError& e) {
    return e;
  }
  ADD_FAILURE() << "accepted: " << json;
  return ApiError(0, "", "");
}

TEST(GenerationRequest, ParsesJsonWithDefaults) {
  const GenerationParams p = video(R"({"prompt": "a cat"})");
  EXPECT_EQ(p.model, "tiny");
  EXPECT_EQ(p.request.prompt, "a cat");
  EXPECT_EQ(p.request.width, 64);
  EXPECT_EQ(p.request.height, 64);
  EXPECT_EQ(p.request.frames, 16);
  EXPECT_EQ(p.request.steps, 30);
  EXPECT_FALSE(p.deadline_s.has_value());
  EXPECT_FALSE(p.reject_if_late);
}

// Fields left out take the chosen model's defaults: Wan's frames, size, steps, guidance
// and fps (seconds map through its 16 fps), its sampler, shift and negative prompt left
// to the pipeline; a frame count Wan cannot take is a 400 naming num_frames.
TEST(GenerationRequest, WanRequestsGetWanDefaults) {
  const std::vector<std::string> models = {"tiny", "tiny-wan"};
  const auto wan = [&](const std::string& json) {
    return parse_video_request(json_fields(json), models, RequestLimits{});
  };
  const GenerateRequest want = default_request(find_model("tiny-wan"));
  const GenerationParams p = wan(R"({"model": "tiny-wan", "prompt": "a heron"})");
  EXPECT_EQ(p.model, "tiny-wan");
  EXPECT_EQ(p.request.frames, want.frames);
  EXPECT_EQ(p.request.width, want.width);
  EXPECT_EQ(p.request.height, want.height);
  EXPECT_EQ(p.request.steps, want.steps);
  EXPECT_FLOAT_EQ(p.request.guidance, want.guidance);
  EXPECT_FLOAT_EQ(p.request.fps, 16.0f);
  EXPECT_FALSE(p.request.sampler.has_value());  // the model's (unipc)
  EXPECT_FALSE(p.request.shift.has_value());
  EXPECT_EQ(p.request.negative_prompt, "");      // the model's sample_neg_prompt
  // The Open-Sora defaults would be 16 frames, 30 steps, guidance 7 at 24 fps.
  EXPECT_NE(p.request.steps, 30);
  EXPECT_NE(p.request.guidance, 7.0f);

  const GenerationParams given = wan(
      R"({"model": "tiny-wan", "prompt": "a heron", "size": "48x32", "num_frames": 9,
          "steps": 4, "guidance_scale": 3})");
  EXPECT_EQ(given.request.frames, 9);
  EXPECT_EQ(given.request.width, 48);
  EXPECT_EQ(given.request.steps, 4);
  EXPECT_FLOAT_EQ(given.request.guidance, 3.0f);
  EXPECT_EQ(wan(R"({"model": "tiny-wan", "prompt": "p", "seconds": "0.5625"})").request.frames, 9);

  for (const std::string body : {R"({"model": "tiny-wan", "prompt": "p", "num_frames": 6})",
                                 R"({"model": "tiny-wan", "prompt": "p", "seconds": "1"})"}) {
    try {
      wan(body);
      ADD_FAILURE() << "accepted: " << body;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400) << body;
      EXPECT_EQ(e.param, "num_frames") << body << ": " << e.what();
      EXPECT_NE(std::string(e.what()).find("4k+1"), std::string::npos) << e.what();
    }
  }
  // The default model keeps its own defaults.
  const GenerationParams tiny = wan(R"({"prompt": "p"})");
  EXPECT_EQ(tiny.request.frames, 16);
  EXPECT_EQ(tiny.request.steps, 30);
  EXPECT_FLOAT_EQ(tiny.request.fps, 24.0f);
}

// Wan's negative prompt, sampler and shift, from JSON and from a form; each bad value a
// 400 naming its field. Open-Sora ignores a negative prompt (the pipeline does) but takes
// neither a flow sampler nor a shift.
TEST(GenerationRequest, NegativePromptSamplerAndShift) {
  const std::vector<std::string> models = {"tiny", "tiny-wan"};
  const auto parse = [&](const std::string& json) {
    return parse_video_request(json_fields(json), models, RequestLimits{});
  };
  const GenerationParams p = parse(
      R"({"model": "tiny-wan", "prompt": "a heron", "negative_prompt": "blurry, static",
          "sampler": "euler", "shift": 3.5})");
  EXPECT_EQ(p.request.negative_prompt, "blurry, static");
  ASSERT_TRUE(p.request.sampler.has_value());
  EXPECT_EQ(*p.request.sampler, SamplerKind::euler);
  ASSERT_TRUE(p.request.shift.has_value());
  EXPECT_DOUBLE_EQ(*p.request.shift, 3.5);
  EXPECT_EQ(*parse(R"({"model": "tiny-wan", "prompt": "p", "sampler": "unipc"})").request.sampler,
            SamplerKind::unipc);
  EXPECT_EQ(*parse(R"({"model": "tiny", "prompt": "p", "sampler": "rflow"})").request.sampler,
            SamplerKind::rectified_flow);
  EXPECT_EQ(parse(R"({"model": "tiny", "prompt": "p", "negative_prompt": "n"})").request.negative_prompt,
            "n");

  Fields f;
  f.from_form = true;
  f.values = {{"model", "tiny-wan"}, {"prompt", "p"}, {"negative_prompt", "dark"},
              {"sampler", "euler"},  {"shift", "2.5"}};
  const GenerationParams from_form = parse_video_request(f, models, RequestLimits{});
  EXPECT_EQ(from_form.request.negative_prompt, "dark");
  EXPECT_EQ(*from_form.request.sampler, SamplerKind::euler);
  EXPECT_DOUBLE_EQ(*from_form.request.shift, 2.5);

  RequestLimits limits;
  limits.max_prompt_bytes = 8;
  const std::vector<std::pair<std::string, std::string>> bad = {
      {R"({"model": "tiny-wan", "prompt": "p", "negative_prompt": 3})", "negative_prompt"},
      {R"({"model": "tiny-wan", "prompt": "p", "negative_prompt": "123456789"})", "negative_prompt"},
      {R"({"model": "tiny-wan", "prompt": "p", "sampler": "ddim"})", "sampler"},
      {R"({"model": "tiny-wan", "prompt": "p", "sampler": 1})", "sampler"},
      {R"({"model": "tiny-wan", "prompt": "p", "sampler": "rflow"})", "sampler"},
      {R"({"model": "tiny", "prompt": "p", "sampler": "unipc"})", "sampler"},
      {R"({"model": "tiny-wan", "prompt": "p", "shift": 0})", "shift"},
      {R"({"model": "tiny-wan", "prompt": "p", "shift": -1})", "shift"},
      {R"({"model": "tiny-wan", "prompt": "p", "shift": 1e9})", "shift"},
      {R"({"model": "tiny-wan", "prompt": "p", "shift": "3"})", "shift"},
      {R"({"model": "tiny", "prompt": "p", "shift": 3})", "shift"},
  };
  for (const auto& [body, field] : bad) {
    try {
      parse_video_request(json_fields(body), models, limits);
      ADD_FAILURE() << "accepted: " << body;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400) << body;
      EXPECT_EQ(e.param, field) << body << ": " << e.what();
      EXPECT_EQ(std::string(e.what()).rfind(field + ":", 0), 0u) << e.what();
    }
  }
  // The byte limit is the prompt's: a negative prompt of exactly that many bytes passes.
  EXPECT_EQ(parse_video_request(
                json_fields(R"({"model": "tiny-wan", "prompt": "p", "negative_prompt": "12345678"})"),
                models, limits)
                .request.negative_prompt,
            "12345678");
  // Images take them too.
  const ImageParams image = parse_image_request(
      json_fields(R"({"model": "tiny-wan", "prompt": "p", "negative_prompt": "n", "sampler": "euler"})"),
      models, RequestLimits{});
  EXPECT_EQ(image.generation.request.negative_prompt, "n");
  EXPECT_EQ(*image.generation.request.sampler, SamplerKind::euler);
}

TEST(GenerationRequest, ParsesEveryField) {
  const GenerationParams p = video(
      R"({"model": "tiny", "prompt": "p", "size": "32x48", "num_frames": 8, "steps": 3,
          "guidance_scale": 4.5, "seed": 18446744073709551615, "deadline_ms": 2500,
          "priority": -3, "reject_if_late": true})");
  EXPECT_EQ(p.request.width, 32);
  EXPECT_EQ(p.request.height, 48);
  EXPECT_EQ(p.request.frames, 8);
  EXPECT_EQ(p.request.steps, 3);
  EXPECT_FLOAT_EQ(p.request.guidance, 4.5f);
  EXPECT_EQ(p.request.seed, 18446744073709551615ull);
  EXPECT_DOUBLE_EQ(*p.deadline_s, 2.5);
  EXPECT_EQ(p.priority, -3);
  EXPECT_TRUE(p.reject_if_late);
}

TEST(GenerationRequest, FormValuesAreParsedFromText) {
  const GenerationParams p = form({{"prompt", "p"}, {"steps", "2"}, {"seconds", "1"},
                                   {"guidance_scale", "3"}, {"reject_if_late", "true"},
                                   {"deadline_ms", "1000"}});
  EXPECT_EQ(p.request.steps, 2);
  EXPECT_EQ(p.request.frames, 24);  // 1 s at 24 fps
  EXPECT_TRUE(p.reject_if_late);
  try {
    form({{"prompt", "p"}, {"steps", "two"}});
    FAIL();
  } catch (const ApiError& e) {
    EXPECT_EQ(e.param, "steps");
  }
}

TEST(GenerationRequest, SecondsAndFramesMapThroughFps) {
  EXPECT_EQ(video(R"({"prompt": "p", "seconds": "4"})").request.frames, 96);
  EXPECT_EQ(video(R"({"prompt": "p", "seconds": 0.5})").request.frames, 12);
  EXPECT_EQ(video(R"({"prompt": "p", "seconds": "1", "num_frames": 24})").request.frames, 24);
  EXPECT_EQ(seconds_text(96, 24), "4");
  EXPECT_EQ(seconds_text(16, 24), "0.67");
  const ApiError e = video_error(R"({"prompt": "p", "seconds": "4", "num_frames": 16})");
  EXPECT_EQ(e.status, 400);
  EXPECT_EQ(e.param, "seconds");
}

TEST(GenerationRequest, EveryBadInputNamesItsField) {
  const std::vector<std::pair<std::string, std::string>> cases = {
      {R"({"prompt": "p", "steps": "2"})", "steps"},              // wrong type (JSON)
      {R"({"prompt": 5})", "prompt"},                            // wrong type
      {R"({"prompt": ""})", "prompt"},                           // empty
      {R"({"size": "64x64"})", "prompt"},                        // missing
      {R"({"prompt": "p", "colour": "red"})", "colour"},         // unknown field
      {R"({"prompt": "p", "model": "sora-2"})", "model"},        // unknown model
      {R"({"prompt": "p", "size": "0x64"})", "size"},            // out of range
      {R"({"prompt": "p", "size": "99999x64"})", "size"},        // out of range
      {R"({"prompt": "p", "size": "64by64"})", "size"},          // malformed
      {R"({"prompt": "p", "size": "65x64"})", "size"},           // not a multiple
      {R"({"prompt": "p", "num_frames": 100000})", "num_frames"},  // absurd
      {R"({"prompt": "p", "num_frames": 0})", "num_frames"},
      {R"({"prompt": "p", "num_frames": 2.5})", "num_frames"},
      {R"({"prompt": "p", "steps": 1000000})", "steps"},         // absurd
      {R"({"prompt": "p", "steps": 0})", "steps"},
      {R"({"prompt": "p", "seconds": "-1"})", "seconds"},
      {R"({"prompt": "p", "seconds": "forever"})", "seconds"},
      {R"({"prompt": "p", "guidance_scale": "high"})", "guidance_scale"},
      {R"({"prompt": "p", "seed": -1})", "seed"},
      {R"({"prompt": "p", "deadline_ms": 0})", "deadline_ms"},
      {R"({"prompt": "p", "priority": 1e9})", "priority"},
      {R"({"prompt": "p", "reject_if_late": "yes"})", "reject_if_late"},
      {R"({"prompt": "p", "reject_if_late": true})", "reject_if_late"},  // needs a deadline
  };
  for (const auto& [body, field] : cases) {
    const ApiError e = video_error(body);
    EXPECT_EQ(e.status, 400) << body;
    EXPECT_EQ(e.param, field) << body << ": " << e.what();
    const nlohmann::json j = e.body();
    EXPECT_EQ(j["error"]["param"], field);
    EXPECT_EQ(j["error"]["type"], "invalid_request_error");
    EXPECT_FALSE(j["error"]["message"].get<std::string>().empty());
  }
}

TEST(GenerationRequest, MalformedJsonIsAnInvalidJsonError) {
  for (const std::string body : {"{\"prompt\": ", "[1, 2]", "", "null"}) {
    try {
      json_fields(body);
      FAIL() << body;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.status, 400);
      EXPECT_EQ(e.code, "invalid_json");
    }
  }
}

TEST(GenerationRequest, ImagesAreOneFrame) {
  const ImageParams p = parse_image_request(
      json_fields(R"({"prompt": "p", "size": "32x32", "response_format": "url", "n": 1})"), kModels, {});
  EXPECT_EQ(p.generation.request.frames, 1);
  EXPECT_EQ(p.response_format, "url");
  for (const auto& [body, field] : std::vector<std::pair<std::string, std::string>>{
           {R"({"prompt": "p", "n": 2})", "n"},
           {R"({"prompt": "p", "response_format": "jpeg"})", "response_format"},
           {R"({"prompt": "p", "num_frames": 4})", "num_frames"}}) {
    try {
      parse_image_request(json_fields(body), kModels, {});
      FAIL() << body;
    } catch (const ApiError& e) {
      EXPECT_EQ(e.param, field) << body;
    }
  }
}

TEST(ApiErrorMapping, EngineFieldNamesBecomeApiNames) {
  EXPECT_EQ(from_invalid_argument(InvalidArgument("frames: must be 1 or 4k+1")).param, "num_frames");
  EXPECT_EQ(from_invalid_argument(InvalidArgument("guidance: not finite")).param, "guidance_scale");
  EXPECT_EQ(from_invalid_argument(InvalidArgument("size: bad")).param, "size");
  EXPECT_EQ(from_invalid_argument(InvalidArgument("no field here")).param, "");
}

}  // namespace
}  // namespace ditserve::server
