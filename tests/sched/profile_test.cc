#include "sched/profile.h"

#include <cstdio>
#include <fstream>

#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "sched/error.h"

namespace ditserve::sched {
namespace {

using nlohmann::json;

json valid_profile() {
  return json::parse(R"({
    "model": "opensora-v1.2",
    "shapes": [
      {"name": "240p", "height": 240, "width": 426, "frames": 51,
       "step_ms": {"1": 111.7, "2": 86.4}, "encode_ms": 30,
       "decode_ms": {"1": 386}, "move_ms": 1},
      {"height": 1024, "width": 1024, "step_ms": {"1": 220, "2": 136}, "encode_ms": 25,
       "decode_ms": {"1": 160}}
    ]})");
}

std::string error_of(const json& j) {
  try {
    parse_profile(j, "p.json");
  } catch (const InvalidInput& e) {
    return e.what();
  }
  return "";
}

TEST(Profile, ParsesMillisecondsIntoSecondsAndNamesImagesByWidthXHeight) {
  const Profile p = parse_profile(valid_profile(), "p.json");
  ASSERT_EQ(p.shapes.size(), 2u);
  EXPECT_EQ(p.model, "opensora-v1.2");
  EXPECT_DOUBLE_EQ(p.shapes[0].step(2), 0.0864);
  EXPECT_DOUBLE_EQ(p.shapes[0].encode_s, 0.030);
  EXPECT_DOUBLE_EQ(p.shapes[0].move_s, 0.001);
  EXPECT_EQ(p.shapes[1].name, "1024x1024");
  EXPECT_EQ(p.shapes[1].frames, 1);
  EXPECT_EQ(p.shape_index("240p", "test"), 0);
  // Solo latency on one device: encode + steps x t(1) + decode(1).
  EXPECT_NEAR(p.shapes[0].solo_latency(30), 0.030 + 30 * 0.1117 + 0.386, 1e-12);
}

TEST(Profile, RoundTripsThroughJson) {
  const Profile p = parse_profile(valid_profile(), "p.json");
  const Profile q = parse_profile(profile_to_json(p), "again");
  ASSERT_EQ(q.shapes.size(), p.shapes.size());
  EXPECT_DOUBLE_EQ(q.shapes[0].step(1), p.shapes[0].step(1));
  EXPECT_DOUBLE_EQ(q.shapes[1].decode(1), p.shapes[1].decode(1));
}

TEST(Profile, MalformedInputNamesTheField) {
  json j = valid_profile();
  j["shapes"][0].erase("step_ms");
  EXPECT_NE(error_of(j).find("shapes[0]: missing field 'step_ms'"), std::string::npos) << error_of(j);
  j = valid_profile();
  j["shapes"][1]["step_ms"]["two"] = 5;
  EXPECT_NE(error_of(j).find("shapes[1].step_ms[\"two\"]"), std::string::npos) << error_of(j);
  j = valid_profile();
  j["shapes"][0]["encode_ms"] = -1;
  EXPECT_NE(error_of(j).find("shapes[0].encode_ms"), std::string::npos) << error_of(j);
  j = valid_profile();
  j["shapes"][0]["step_ms"] = {{"2", 50.0}};
  EXPECT_NE(error_of(j).find("DoP 1 is required"), std::string::npos) << error_of(j);
  j = valid_profile();
  j["shapes"][1]["name"] = "240p";
  EXPECT_NE(error_of(j).find("appears twice"), std::string::npos) << error_of(j);
  j = valid_profile();
  j.erase("model");
  EXPECT_NE(error_of(j).find("missing field 'model'"), std::string::npos) << error_of(j);
}

// One profile may hold the shapes of several models (Open-Sora and Wan on one cluster):
// a shape's optional "model" overrides the profile's; profiles without it are unchanged.
TEST(Profile, ShapesMayNameTheirOwnModel) {
  json j = valid_profile();
  j["model"] = "opensora-v1.2+wan2.1-t2v";
  j["shapes"][0]["model"] = "opensora-v1.2";
  j["shapes"].push_back(json::parse(R"({"name": "wan1.3b-480p", "model": "wan2.1-t2v-1.3b",
      "height": 480, "width": 832, "frames": 81, "step_ms": {"1": 1567.8, "2": 873.2},
      "encode_ms": 247.7, "decode_ms": {"1": 859.5}})"));
  const Profile p = parse_profile(j, "mixed.json");
  ASSERT_EQ(p.shapes.size(), 3u);
  EXPECT_EQ(p.model_of(0), "opensora-v1.2");
  EXPECT_EQ(p.model_of(1), "opensora-v1.2+wan2.1-t2v");  // no field: the profile's model
  EXPECT_EQ(p.model_of(p.shape_index("wan1.3b-480p", "test")), "wan2.1-t2v-1.3b");
  const Profile q = parse_profile(profile_to_json(p), "again");
  EXPECT_EQ(q.shapes[2].model, "wan2.1-t2v-1.3b");
  EXPECT_TRUE(q.shapes[1].model.empty());
  const json plain = profile_to_json(parse_profile(valid_profile(), "p.json"));
  EXPECT_FALSE(plain["shapes"][0].contains("model"));  // unchanged for one-model profiles
  j["shapes"][2]["model"] = 3;
  EXPECT_NE(error_of(j).find("shapes[2].model"), std::string::npos) << error_of(j);
}

TEST(Profile, LoadNamesTheFileOnBadJson) {
  const std::string path = ::testing::TempDir() + "/bad_profile.json";
  std::ofstream(path) << "{\"model\": ";
  try {
    load_profile(path);
    FAIL() << "expected an error";
  } catch (const InvalidInput& e) {
    EXPECT_NE(std::string(e.what()).find(path), std::string::npos) << e.what();
  }
  EXPECT_THROW(load_profile(path + ".missing"), InvalidInput);
}

TEST(Profile, UnknownShapeListsTheKnownOnes) {
  const Profile p = parse_profile(valid_profile(), "p.json");
  try {
    p.shape_index("4k", "trace.jsonl:3");
    FAIL();
  } catch (const InvalidInput& e) {
    const std::string m = e.what();
    EXPECT_NE(m.find("trace.jsonl:3"), std::string::npos) << m;
    EXPECT_NE(m.find("240p, 1024x1024"), std::string::npos) << m;
  }
}

TEST(Profile, DopAboveTheDeviceCountIsAnError) {
  const Profile p = parse_profile(valid_profile(), "p.json");
  EXPECT_NO_THROW(p.check_fits(2));
  EXPECT_THROW(p.check_fits(1), InvalidInput);
}

// The gains DDiT reports for doubling the DoP (1->2, 2->4, 4->8) and the optimal DoP it
// derives: our threshold must reproduce all three.
ShapeProfile with_gains(double z2, double z4, double z8) {
  ShapeProfile s;
  s.name = "s";
  double t = 1.0;
  s.step_s[1] = t;
  s.step_s[2] = t *= (1 - z2);
  s.step_s[4] = t *= (1 - z4);
  s.step_s[8] = t *= (1 - z8);
  s.decode_s[1] = 1;
  return s;
}

TEST(Profile, OptimalDopMatchesDditsReportedChoices) {
  EXPECT_EQ(with_gains(0.0, -0.07, -0.02).optimal_dop(kDefaultMinGain, 8), 1);  // 144p
  EXPECT_EQ(with_gains(0.45, 0.20, -0.07).optimal_dop(kDefaultMinGain, 8), 2);  // 240p
  EXPECT_EQ(with_gains(0.46, 0.47, 0.34).optimal_dop(kDefaultMinGain, 8), 4);   // 360p
  // Capped by the cluster, and by a lower threshold's generosity.
  EXPECT_EQ(with_gains(0.46, 0.47, 0.34).optimal_dop(kDefaultMinGain, 2), 2);
  EXPECT_EQ(with_gains(0.46, 0.47, 0.34).optimal_dop(0.3, 8), 8);
}

}  // namespace
}  // namespace ditserve::sched
