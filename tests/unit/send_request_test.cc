#include "services/sender/send_request.h"

#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "common/hmac.h"
#include "common/page_tokens.h"
#include "services/sender/media_upload.h"

#include <fstream>

namespace katy::sender {
namespace {

katy::v1::OutboundMessage Reply() {
  katy::v1::OutboundMessage message;
  message.set_id("1-0#0");
  message.set_page_id("1045");
  message.set_recipient_id("7100");
  message.set_messaging_type("RESPONSE");
  message.set_message_json(R"({"text":"hi"})");
  return message;
}

TEST(SendRequestTest, BuildsSendApiCall) {
  auto request = BuildSendRequest(Reply(), "http://graph/v25.0/", "tok en", "");
  ASSERT_TRUE(request);
  EXPECT_EQ(request->url, "http://graph/v25.0/1045/messages?access_token=tok%20en");
  auto body = nlohmann::json::parse(request->body);
  EXPECT_EQ(body["recipient"]["id"], "7100");
  EXPECT_EQ(body["messaging_type"], "RESPONSE");
  EXPECT_EQ(body["message"]["text"], "hi");
  EXPECT_FALSE(body.contains("sender_action"));
}

TEST(SendRequestTest, InvalidUtf8BecomesAReplacementCharacterNotACrash) {
  // Found by send_request_fuzz: serialising a field with a broken UTF-8 sequence threw.
  auto message = Reply();
  message.set_recipient_id("71\x92");
  auto request = BuildSendRequest(message, "http://graph/v25.0/", "token", "");
  ASSERT_TRUE(request);
  EXPECT_EQ(nlohmann::json::parse(request->body)["recipient"]["id"], "71\xef\xbf\xbd");
}

TEST(SendRequestTest, AppsecretProofTagsUserRefAndSenderAction) {
  auto message = Reply();
  message.set_recipient_is_ref(true);
  message.set_messaging_type("MESSAGE_TAG");
  message.set_tag("ACCOUNT_UPDATE");
  auto request = BuildSendRequest(message, "http://g", "tok", "secret");
  ASSERT_TRUE(request);
  EXPECT_NE(request->url.find("&appsecret_proof=" + HmacSha256Hex("secret", "tok")), std::string::npos);
  auto body = nlohmann::json::parse(request->body);
  EXPECT_EQ(body["recipient"]["user_ref"], "7100");
  EXPECT_EQ(body["tag"], "ACCOUNT_UPDATE");

  auto typing = Reply();
  typing.set_message_json("");
  typing.set_sender_action("typing_on");
  auto typing_body = nlohmann::json::parse(BuildSendRequest(typing, "http://g", "t", "")->body);
  EXPECT_EQ(typing_body["sender_action"], "typing_on");
  EXPECT_FALSE(typing_body.contains("message"));
  EXPECT_FALSE(typing_body.contains("messaging_type"));

  auto broken = Reply();
  broken.set_message_json("not json");
  EXPECT_FALSE(BuildSendRequest(broken, "http://g", "t", ""));
}

// Reusable media: found in a message, named by id instead, uploaded with Meta's body shape.
TEST(MediaUploadTest, ReusableMediaIsUploadedOnceShapeAndSentById) {
  const std::string image =
      R"({"attachment":{"type":"image","payload":{"url":"https://x.y/cat.jpg","is_reusable":true}},)"
      R"("quick_replies":[{"content_type":"text","title":"More","payload":"MORE"}]})";
  auto media = ReusableMediaOf(image);
  ASSERT_TRUE(media.has_value());
  EXPECT_EQ(media->type, "image");
  EXPECT_EQ(media->url, "https://x.y/cat.jpg");
  auto by_id = nlohmann::json::parse(WithAttachmentId(image, "1857777774821032"));
  EXPECT_EQ(by_id["attachment"]["payload"], nlohmann::json({{"attachment_id", "1857777774821032"}}));
  EXPECT_EQ(by_id["attachment"]["type"], "image");
  EXPECT_EQ(by_id["quick_replies"][0]["payload"], "MORE");  // the rest of the message stays

  EXPECT_FALSE(ReusableMediaOf(R"({"attachment":{"type":"image","payload":{"url":"https://x.y/a.jpg"}}})"));
  EXPECT_FALSE(ReusableMediaOf(R"({"attachment":{"type":"file","payload":{"attachment_id":"1"}}})"));
  EXPECT_FALSE(ReusableMediaOf(R"({"attachment":{"type":"template","payload":{"is_reusable":true}}})"));
  EXPECT_FALSE(ReusableMediaOf(R"({"text":"hi"})"));
  EXPECT_FALSE(ReusableMediaOf(""));

  const SendRequest upload = BuildUploadRequest("https://graph.facebook.com/v25.0/", "1045", *media, "tok", "secret");
  EXPECT_EQ(upload.url, "https://graph.facebook.com/v25.0/1045/message_attachments?access_token=tok&appsecret_proof=" +
                            HmacSha256Hex("secret", "tok"));
  EXPECT_EQ(
      nlohmann::json::parse(upload.body),
      nlohmann::json::parse(
          R"({"message":{"attachment":{"type":"image","payload":{"url":"https://x.y/cat.jpg","is_reusable":true}}}})"));
  EXPECT_EQ(UploadedAttachmentId(R"({"attachment_id":"1857777774821032"})"), "1857777774821032");
  EXPECT_EQ(UploadedAttachmentId(R"({"attachment_id":1857777774821032})"), "1857777774821032");
  EXPECT_EQ(UploadedAttachmentId(R"({"error":{}})"), "");
}

TEST(PageTokensTest, FileDefaultAndErrors) {
  const std::string path = "/tmp/katy-page-tokens-test.json";
  std::ofstream(path) << R"({"1045": "token-a", "2046": "token-b"})";
  auto tokens = PageTokens::Load("default-token", path);
  ASSERT_TRUE(tokens.ok()) << tokens.error().message;
  EXPECT_EQ(tokens->For("1045"), "token-a");
  EXPECT_EQ(tokens->For("9999"), "default-token");
  EXPECT_FALSE(PageTokens::Load("", "")->For("1045").has_value());
  std::ofstream(path) << R"({"1045": 7})";
  EXPECT_FALSE(PageTokens::Load("", path).ok());
  EXPECT_FALSE(PageTokens::Load("", "/nonexistent/tokens.json").ok());
}

// An entry may name its platform; a bare token is a Messenger page's. A wrong platform or key
// is refused with the entry named.
TEST(PageTokensTest, EntriesNameTheirPlatform) {
  const std::string path = "/tmp/katy-page-tokens-platform-test.json";
  std::ofstream(path) << R"({"1045": "token-a", "1784": {"token": "token-ig", "platform": "instagram"},
                             "2046": {"token": "token-b", "platform": "messenger"}})";
  auto tokens = PageTokens::Load("", path);
  ASSERT_TRUE(tokens.ok()) << tokens.error().message;
  EXPECT_EQ(tokens->For("1784"), "token-ig");
  EXPECT_TRUE(tokens->IsInstagram("1784"));
  EXPECT_FALSE(tokens->IsInstagram("1045"));
  EXPECT_FALSE(tokens->IsInstagram("2046"));
  std::ofstream(path) << R"({"1784": {"token": "t", "platform": "whatsapp"}})";
  EXPECT_NE(PageTokens::Load("", path).error().message.find("the platform of 1784"), std::string::npos);
  std::ofstream(path) << R"({"1784": {"token": "t", "kind": "instagram"}})";
  EXPECT_NE(PageTokens::Load("", path).error().message.find("unknown key 'kind'"), std::string::npos);
  std::ofstream(path) << R"({"1784": {"platform": "instagram"}})";
  EXPECT_FALSE(PageTokens::Load("", path).ok());
}

}  // namespace
}  // namespace katy::sender
