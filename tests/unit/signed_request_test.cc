// Meta's signed_request (the data deletion callback) and the confirmation codes Katy answers.
#include "common/signed_request.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "services/ingress/data_deletion.h"

namespace katy {
namespace {

constexpr const char* kSecret = "app-secret-0123456789abcdef";
constexpr int64_t kNow = 1'765'000'000;

std::string Payload(int64_t issued_at, const std::string& algorithm = "HMAC-SHA256") {
  return nlohmann::json{
      {"algorithm", algorithm}, {"expires", issued_at + 3600}, {"issued_at", issued_at}, {"user_id", "218471"}}
      .dump();
}

std::string ReasonOf(const Result<SignedRequest>& parsed) { return parsed ? "ok" : parsed.error().reason; }

TEST(SignedRequestTest, AGoodRequestIsReadAndEveryBadOneRefusedWithItsReason) {
  const std::string good = SignRequest(Payload(kNow - 10), kSecret);
  auto parsed = ParseSignedRequest(good, kSecret, kNow);
  ASSERT_TRUE(parsed.ok()) << parsed.error().message;
  EXPECT_EQ(parsed->user_id, "218471");
  EXPECT_EQ(parsed->issued_at_s, kNow - 10);
  EXPECT_EQ(good.find('='), std::string::npos) << "base64url without padding, as Meta sends it";

  EXPECT_EQ(ReasonOf(ParseSignedRequest(SignRequest(Payload(kNow), "another-secret"), kSecret, kNow)), "bad_signature");
  std::string tampered = good;
  tampered.back() = tampered.back() == 'A' ? 'B' : 'A';
  EXPECT_EQ(ReasonOf(ParseSignedRequest(tampered, kSecret, kNow)), "bad_signature");
  EXPECT_EQ(ReasonOf(ParseSignedRequest(SignRequest(Payload(kNow, "HMAC-SHA1"), kSecret), kSecret, kNow)),
            "bad_algorithm");
  EXPECT_EQ(ReasonOf(ParseSignedRequest(SignRequest(Payload(kNow - 7200), kSecret), kSecret, kNow)), "expired");
  EXPECT_EQ(ReasonOf(ParseSignedRequest(SignRequest(Payload(kNow + 3600), kSecret), kSecret, kNow)), "from_the_future");
  EXPECT_EQ(ReasonOf(ParseSignedRequest("no-dot-here", kSecret, kNow)), "bad_format");
  EXPECT_EQ(ReasonOf(ParseSignedRequest("a+b.c/d", kSecret, kNow)), "bad_format");
  EXPECT_EQ(ReasonOf(ParseSignedRequest(SignRequest("[1,2]", kSecret), kSecret, kNow)), "bad_payload");
  EXPECT_EQ(ReasonOf(ParseSignedRequest(SignRequest(R"({"algorithm":"HMAC-SHA256","issued_at":1765000000,)"
                                                    R"("user_id":"../x"})",
                                                    kSecret),
                                        kSecret, kNow)),
            "bad_payload");
}

TEST(SignedRequestTest, ACodeIsStableForOneRequestAndOnlyKatysCodesAreKnown) {
  const std::string request = SignRequest(Payload(kNow), kSecret);
  const std::string code = DeletionCode(request, kSecret, kNow);
  EXPECT_EQ(code, DeletionCode(request, kSecret, kNow)) << "Meta's retry is the same request";
  EXPECT_NE(code, DeletionCode(SignRequest(Payload(kNow + 1), kSecret), kSecret, kNow + 1));
  EXPECT_EQ(code.find("218471"), std::string::npos) << "the code names no id";
  EXPECT_EQ(IssuedAtOfDeletionCode(code, kSecret), kNow);
  EXPECT_FALSE(IssuedAtOfDeletionCode(code, "another-secret"));
  std::string forged = code;
  forged[0] = forged[0] == '1' ? '2' : '1';
  EXPECT_FALSE(IssuedAtOfDeletionCode(forged, kSecret));
  EXPECT_FALSE(IssuedAtOfDeletionCode("123", kSecret));
  EXPECT_FALSE(IssuedAtOfDeletionCode("", kSecret));
}

// The callback's first half, before storage: refused without touching anything, or the event
// to store and the answer that names the status page.
TEST(DataDeletionTest, TheCallbackAnswersWithTheStatusPageAndItsCode) {
  ingress::DeletionOptions options{kSecret, "https://bot.example.com", 90LL * 24 * 3600, {}};
  const std::string request = SignRequest(Payload(kNow), kSecret);
  auto accepted = ingress::CheckDeletionRequest(options, "signed_request=" + request, kNow * 1000);
  ASSERT_TRUE(std::holds_alternative<ingress::DeletionAccepted>(accepted));
  const auto& event = std::get<ingress::DeletionAccepted>(accepted).event;
  EXPECT_EQ(event.kind(), katy::v1::EVENT_KIND_DATA_DELETION);
  EXPECT_EQ(event.user_id(), "218471");
  const auto answer = nlohmann::json::parse(std::get<ingress::DeletionAccepted>(accepted).answer_json);
  EXPECT_EQ(answer["confirmation_code"], event.kind_key());
  EXPECT_EQ(answer["url"], "https://bot.example.com/data-deletion/status?code=" + event.kind_key());

  auto missing = ingress::CheckDeletionRequest(options, "other=1", kNow * 1000);
  EXPECT_EQ(std::get<ingress::DeletionRefusal>(missing).status, 400);
  options.public_url.clear();
  auto off = ingress::CheckDeletionRequest(options, "signed_request=" + request, kNow * 1000);
  EXPECT_EQ(std::get<ingress::DeletionRefusal>(off).status, 404);
}

TEST(DataDeletionTest, TheStatusPageSaysHowTheRequestEndedAndNamesNoId) {
  ingress::DeletionOptions options{kSecret, "https://bot.example.com", 90LL * 24 * 3600, {}};
  const std::string code = DeletionCode("r", kSecret, kNow);
  auto known = ingress::StatusCode(options, "code=" + code);
  ASSERT_TRUE(std::holds_alternative<std::string>(known));
  EXPECT_EQ(std::get<ingress::HttpReply>(ingress::StatusCode(options, "code=1-2-3")).status, 404);
  redis::Reply done;
  done.type = redis::Reply::Type::kString;
  done.str = "done";
  EXPECT_NE(ingress::StatusAnswer(options, code, done, kNow * 1000).body.find("done"), std::string::npos);
  redis::Reply none;
  none.type = redis::Reply::Type::kNil;
  EXPECT_NE(ingress::StatusAnswer(options, code, none, kNow * 1000).body.find("received"), std::string::npos);
  EXPECT_EQ(ingress::StatusAnswer(options, code, none, (kNow + 91LL * 24 * 3600) * 1000).status, 404)
      << "past the record's lifetime the outcome is not known any more";
}

}  // namespace
}  // namespace katy
