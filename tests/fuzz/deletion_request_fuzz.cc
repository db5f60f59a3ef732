// libFuzzer target: Meta's data deletion callback body (a form with a signed_request), which
// anyone can POST to the webhook port. Whatever comes is refused or read, never a crash; what
// is read was signed with the app secret and names a numeric user.
#include <cstddef>
#include <cstdint>
#include <string>
#include <variant>

#include "common/events.h"
#include "services/ingress/data_deletion.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string body(reinterpret_cast<const char*>(data), size);
  katy::ingress::DeletionOptions options;
  options.app_secret = "fuzz-app-secret-0123456789";
  options.public_url = "https://bot.example.com";
  options.status_ttl_s = 86400;
  auto checked = katy::ingress::CheckDeletionRequest(options, body, 1'765'000'000'000);
  if (auto* accepted = std::get_if<katy::ingress::DeletionAccepted>(&checked)) {
    if (!katy::IsNumericId(accepted->event.user_id(), 64)) __builtin_trap();
  }
  // A signed request that verifies is one the secret signed: the fuzzer cannot forge one.
  katy::ingress::StatusCode(options, body);
  return 0;
}
