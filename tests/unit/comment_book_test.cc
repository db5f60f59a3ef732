// The emulator's comments (tools/emulator/comment_book.h): Meta's one private reply per comment
// within 7 days, and webhook changes the ingress parser reads back as the comment written.
#include "tools/emulator/comment_book.h"

#include <gtest/gtest.h>

#include "common/message_tags.h"
#include "services/ingress/webhook_parser.h"
#include "tools/emulator/webhook_delivery.h"

namespace katy::emulator {
namespace {

constexpr int64_t kNow = 1'800'000'000'000;

Comment Written(const std::string& page, bool instagram, int64_t created_ms = kNow) {
  Comment comment;
  comment.page_id = page;
  comment.instagram = instagram;
  comment.author = "u1";
  comment.author_name = "Ana Example";
  comment.text = "price?";
  comment.created_ms = created_ms;
  return comment;
}

TEST(CommentBookTest, OnePrivateReplyPerCommentWithinSevenDays) {
  CommentBook book;
  const Comment fresh = book.Add(Written("p1", false));
  ASSERT_TRUE(std::holds_alternative<Comment>(book.TakePrivateReply(fresh.id, kNow + 1000)));
  auto second = book.TakePrivateReply(fresh.id, kNow + 2000);
  ASSERT_TRUE(std::holds_alternative<GraphError>(second));
  EXPECT_EQ(std::get<GraphError>(second).code, 10900);
  const Comment old = book.Add(Written("p1", false, kNow - kPrivateReplyWindowMs - 1));
  auto late = book.TakePrivateReply(old.id, kNow);
  ASSERT_TRUE(std::holds_alternative<GraphError>(late));
  EXPECT_EQ(std::get<GraphError>(late).code, 10902);
  EXPECT_EQ(std::get<GraphError>(book.TakePrivateReply("nope", kNow)).code, 10902);
  EXPECT_TRUE(book.Find(fresh.id)->answered);
  EXPECT_FALSE(book.Find(old.id)->answered);

  EXPECT_TRUE(std::holds_alternative<std::string>(book.AddPublicReply(fresh.id, "Check your inbox")));
  EXPECT_EQ(book.Find(fresh.id)->public_replies, std::vector<std::string>{"Check your inbox"});
  EXPECT_TRUE(std::holds_alternative<GraphError>(book.AddPublicReply("nope", "x")));
  EXPECT_EQ(book.OnPage("p1").size(), 2u);
  EXPECT_TRUE(book.OnPage("p2").empty());
}

// What the emulator sends is what ingress reads: the same ids, author, text and verb.
TEST(CommentBookTest, ItsWebhooksParseBackToTheComment) {
  CommentBook book;
  for (const bool instagram : {false, true}) {
    const Comment comment = book.Add(Written(instagram ? "17841400000000001" : "p1", instagram));
    const std::string body = BuildBatchBody({{comment.page_id, CommentChange(comment, "add"), false, true}}, kNow,
                                            instagram ? "instagram" : "page");
    auto events = ingress::ParseWebhook(body, kNow);
    ASSERT_TRUE(events.ok()) << body;
    ASSERT_EQ(events->size(), 1u);
    const auto& event = events->front();
    EXPECT_EQ(event.kind(), katy::v1::EVENT_KIND_COMMENT) << body;
    EXPECT_EQ(event.comment_id(), comment.id);
    EXPECT_EQ(event.post_id(), comment.post_id);
    EXPECT_EQ(event.user_id(), "u1");
    EXPECT_EQ(event.user_name(), "Ana Example");
    EXPECT_EQ(event.text(), "price?");
    EXPECT_EQ(event.verb(), "add");
    EXPECT_EQ(event.platform(), instagram ? "instagram" : "");
    EXPECT_EQ(event.timestamp_ms(), instagram ? 0 : kNow);
  }
  Comment visitor = Written("p1", false);
  visitor.visitor_post = true;
  visitor = book.Add(visitor);
  auto events = ingress::ParseWebhook(BuildBatchBody({{"p1", CommentChange(visitor, "add"), false, true}}, kNow), kNow);
  ASSERT_TRUE(events.ok());
  EXPECT_EQ(events->front().comment_id(), "");
  EXPECT_EQ(events->front().post_id(), visitor.id);
}

}  // namespace
}  // namespace katy::emulator
