#include "services/sender/error_classifier.h"

#include <gtest/gtest.h>

namespace katy::sender {
namespace {

SendResponse GraphError(long status, int code, int subcode = 0) {
  std::string body = R"({"error":{"message":"m","type":"OAuthException","code":)" + std::to_string(code);
  if (subcode != 0) body += ",\"error_subcode\":" + std::to_string(subcode);
  body += R"(,"fbtrace_id":"x"}})";
  return SendResponse{status, "", body, {}};
}

struct Case {
  long status;
  int code;
  int subcode;
  SendAction action;
  const char* reason;
};

// One row per line of docs/messenger-platform.md, "Send API errors".
const Case kCases[] = {
    // transient: by the code, whatever the status (a 500 alone would retry on the fallback)
    {500, 1, 0, SendAction::kRetry, "transient"},
    {400, 1, 0, SendAction::kRetry, "transient"},
    {400, 2, 0, SendAction::kRetry, "transient"},
    {400, 1200, 0, SendAction::kRetry, "transient"},
    {400, 2018321, 0, SendAction::kRetry, "transient"},
    // throttled
    {400, 4, 0, SendAction::kThrottle, "throttled"},
    {400, 17, 0, SendAction::kThrottle, "throttled"},
    {400, 32, 0, SendAction::kThrottle, "throttled"},
    {400, 341, 0, SendAction::kThrottle, "throttled"},
    {400, 613, 0, SendAction::kThrottle, "throttled"},
    {400, 613, 1234, SendAction::kThrottle, "throttled"},
    {400, 80001, 0, SendAction::kThrottle, "throttled"},
    {400, 80006, 0, SendAction::kThrottle, "throttled"},
    // recipient gone
    {400, 551, 0, SendAction::kDeadLetter, "recipient_gone"},
    {400, 200, 1545041, SendAction::kDeadLetter, "recipient_gone"},
    {400, 10, 2018108, SendAction::kDeadLetter, "recipient_gone"},
    {400, 100, 2018001, SendAction::kDeadLetter, "recipient_gone"},
    // outside window (seen as 400 and 500)
    {400, 10, 2018278, SendAction::kDeadLetter, "outside_window"},
    {500, 10, 2534022, SendAction::kDeadLetter, "outside_window"},
    {400, 10, 2018065, SendAction::kDeadLetter, "outside_window"},
    // private replies (docs/comments.md)
    {400, 10900, 0, SendAction::kDeadLetter, "comment_already_answered"},
    {400, 10902, 0, SendAction::kDeadLetter, "comment_not_replyable"},
    // bad request
    {400, 100, 2018109, SendAction::kDeadLetter, "bad_request"},
    {400, 100, 0, SendAction::kDeadLetter, "bad_request"},
    // page broken
    {400, 190, 0, SendAction::kPausePage, "page_broken"},
    {400, 190, 460, SendAction::kPausePage, "page_broken"},
    {400, 10, 1893063, SendAction::kPausePage, "page_broken"},
    {403, 200, 0, SendAction::kPausePage, "page_broken"},
    // policy
    {400, 613, 2018338, SendAction::kDeadLetter, "policy"},
    {400, 2018300, 0, SendAction::kDeadLetter, "policy"},
    // already delivered
    {400, 1, 1357046, SendAction::kDelivered, "already_delivered"},
};

TEST(ErrorClassifierTest, EveryRowOfTheTable) {
  for (const Case& c : kCases) {
    Classification got = Classify(GraphError(c.status, c.code, c.subcode));
    EXPECT_EQ(got.action, c.action) << c.code << "/" << c.subcode << " -> " << SendActionName(got.action);
    EXPECT_EQ(got.reason, c.reason) << c.code << "/" << c.subcode;
    EXPECT_EQ(got.code, c.code);
    EXPECT_EQ(got.subcode, c.subcode);
  }
}

TEST(ErrorClassifierTest, TransportFailuresAndStatusFallbacks) {
  EXPECT_EQ(Classify({0, "timeout", "", {}}).action, SendAction::kRetry);
  EXPECT_EQ(Classify({0, "connect", "", {}}).action, SendAction::kRetry);
  EXPECT_EQ(Classify({502, "", "<html>bad gateway</html>", {}}).action, SendAction::kRetry);
  EXPECT_EQ(Classify({429, "", "", {}}).action, SendAction::kThrottle);
  EXPECT_EQ(Classify({404, "", "not json", {}}).action, SendAction::kDeadLetter);
  auto unknown = Classify(GraphError(400, 99999));
  EXPECT_EQ(unknown.action, SendAction::kDeadLetter);
  EXPECT_EQ(unknown.reason, "unknown_error_99999");
  EXPECT_EQ(Classify(GraphError(503, 99999)).action, SendAction::kRetry);
  EXPECT_EQ(Classify({200, "", R"({"recipient_id":"1","message_id":"m"})", {}}).action, SendAction::kDelivered);
  // Codes given as strings are read too.
  SendResponse as_string{400, "", R"({"error":{"code":"613"}})", {}};
  EXPECT_EQ(Classify(as_string).action, SendAction::kThrottle);
}

TEST(ErrorClassifierTest, UsageHeaders) {
  EXPECT_EQ(UsageBackoff({}), std::chrono::milliseconds(0));
  EXPECT_EQ(UsageBackoff({{"x-app-usage", R"({"call_count":42,"total_time":10,"total_cputime":5})"}}),
            std::chrono::milliseconds(0));
  EXPECT_EQ(UsageBackoff({{"x-app-usage", R"({"call_count":100,"total_time":10,"total_cputime":5})"}}),
            std::chrono::minutes(1));
  EXPECT_EQ(
      UsageBackoff(
          {{"x-business-use-case-usage",
            R"({"1045":[{"type":"messenger","call_count":30,"total_cputime":1,"total_time":1,"estimated_time_to_regain_access":7}]})"}}),
      std::chrono::minutes(7));
  EXPECT_EQ(UsageBackoff({{"x-app-usage", "garbage"}}), std::chrono::milliseconds(0));
  // Meta's estimate wins over a bare 100: 0 minutes means access is back soon.
  EXPECT_EQ(UsageBackoff({{"x-business-use-case-usage",
                           R"({"1":[{"type":"messenger","call_count":100,"estimated_time_to_regain_access":0}]})"}}),
            std::chrono::milliseconds(0));
  EXPECT_EQ(UsageBackoff({{"x-business-use-case-usage", R"({"1":[{"type":"messenger","call_count":100}]})"}}),
            std::chrono::minutes(1));
  // A throttling error waits at least what the headers say; a success still reports it.
  SendResponse throttled = GraphError(400, 613);
  throttled.headers["x-business-use-case-usage"] =
      R"({"1":[{"type":"messenger","estimated_time_to_regain_access":2}]})";
  EXPECT_EQ(Classify(throttled).wait, std::chrono::minutes(2));
  EXPECT_GE(Classify(GraphError(400, 4)).wait, std::chrono::seconds(1));
  SendResponse ok{200, "", "{}", {{"x-app-usage", R"({"call_count":100})"}}};
  EXPECT_EQ(Classify(ok).action, SendAction::kDelivered);
  EXPECT_EQ(Classify(ok).wait, std::chrono::minutes(1));
}

}  // namespace
}  // namespace katy::sender
