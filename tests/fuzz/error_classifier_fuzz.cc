// libFuzzer target: the Graph error classifier over any answer (status, body, usage headers).
// Whatever Meta or a proxy sends back, the sender must get one of its actions, with a reason.
#include <fuzzer/FuzzedDataProvider.h>

#include <cstddef>
#include <cstdint>
#include <string>

#include "services/sender/error_classifier.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  FuzzedDataProvider input(data, size);
  katy::sender::SendResponse response;
  response.http_status = input.ConsumeIntegralInRange<long>(0, 599);
  response.transport_error = input.PickValueInArray({"", "timeout", "connect", "io"});
  response.headers["x-app-usage"] = input.ConsumeRandomLengthString(200);
  response.headers["x-business-use-case-usage"] = input.ConsumeRandomLengthString(400);
  response.body = input.ConsumeRemainingBytesAsString();
  const auto verdict = katy::sender::Classify(response);
  if (verdict.reason.empty() || verdict.wait.count() < 0) __builtin_trap();
  if (std::string(katy::sender::SendActionName(verdict.action)).empty()) __builtin_trap();
  return 0;
}
