// libFuzzer target: the Send API body builder over any outbound message (its `message` JSON
// comes from rules and skills, so from people and other services). What it builds must be a
// JSON object with the recipient; what it cannot build it refuses.
#include <fuzzer/FuzzedDataProvider.h>
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

#include "services/sender/send_request.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider input(data, size);
  katy::v1::OutboundMessage message;
  message.set_id("fuzz");
  message.set_page_id(input.ConsumeRandomLengthString(30));
  message.set_recipient_id(input.ConsumeRandomLengthString(30));
  message.set_recipient_is_ref(input.ConsumeBool());
  message.set_messaging_type(input.PickValueInArray({"RESPONSE", "UPDATE", "MESSAGE_TAG", ""}));
  message.set_tag(input.ConsumeRandomLengthString(30));
  message.set_sender_action(input.ConsumeBool() ? input.ConsumeRandomLengthString(20) : "");
  const bool with_proof = input.ConsumeBool();
  message.set_message_json(input.ConsumeRemainingBytesAsString());
  const auto request =
      katy::sender::BuildSendRequest(message, "http://graph.invalid/v25.0", "token", with_proof ? "secret" : "");
  if (request) {
    const auto body = nlohmann::json::parse(request->body, nullptr, false);
    if (body.is_discarded() || !body.is_object() || !body.contains("recipient")) __builtin_trap();
    if (request->url.find("access_token=") == std::string::npos) __builtin_trap();
  }
  return 0;
}
