// libFuzzer target: the rules matcher and renderer (the demo rules in deploy/rules/katy.yaml)
// over any event and conversation. Every reply it renders must be a JSON object Meta's Send
// API could take.
#include <fuzzer/FuzzedDataProvider.h>
#include <nlohmann/json.hpp>

#include <cstddef>
#include <cstdint>
#include <fstream>
#include <sstream>
#include <string>

#include "services/responder/rules.h"

namespace {

const katy::responder::RuleSet& DemoRules() {
  static const katy::responder::RuleSet rules = [] {
    auto loaded = katy::responder::LoadRulesFile(KATY_SOURCE_DIR "/deploy/rules/katy.yaml");
    if (!loaded.ok()) __builtin_trap();
    return std::move(*loaded);
  }();
  return rules;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider input(data, size);
  katy::v1::InboundEvent event;
  event.set_page_id("1045");
  event.set_user_id(input.ConsumeRandomLengthString(40));
  event.set_kind(static_cast<katy::v1::EventKind>(input.ConsumeIntegralInRange<int>(0, 13)));
  event.set_standby(input.ConsumeBool());
  event.set_text(input.ConsumeRandomLengthString(3000));
  event.set_quick_reply_payload(input.ConsumeRandomLengthString(100));
  event.set_postback_payload(input.ConsumeRandomLengthString(100));
  if (input.ConsumeBool()) event.add_attachments()->set_type(input.ConsumeRandomLengthString(20));
  katy::responder::Conversation conversation;
  conversation.state = input.ConsumeRandomLengthString(30);
  conversation.first_name = input.ConsumeRandomLengthString(60);
  conversation.first_contact = input.ConsumeBool();
  conversation.vars[input.ConsumeRandomLengthString(20)] = input.ConsumeRandomLengthString(200);
  const auto seed = input.ConsumeIntegral<size_t>();

  const auto decision =
      katy::responder::Decide(DemoRules(), event, conversation, [seed](size_t n) { return seed % n; });
  for (const std::string& message : decision.messages) {
    const auto json = nlohmann::json::parse(message, nullptr, false);
    if (json.is_discarded() || !json.is_object()) __builtin_trap();
  }
  katy::responder::Render(input.ConsumeRemainingBytesAsString(), conversation.vars);
  return 0;
}
