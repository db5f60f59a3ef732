// libFuzzer target: the webhook port's HTTP/1.1 request parser over any bytes. It must never
// crash or read past its input, and what it accepts must be consistent with its limits.
#include <cstddef>
#include <cstdint>
#include <string_view>

#include "services/ingress/http1.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string_view bytes(reinterpret_cast<const char*>(data), size);
  const katy::ingress::HttpLimits limits{4096, 16384};
  const katy::ingress::HttpParse parsed = katy::ingress::ParseHttpRequest(bytes, limits);
  using Status = katy::ingress::HttpParse::Status;
  if (parsed.status == Status::kComplete) {
    const auto& request = parsed.request;
    if (parsed.consumed == 0 || parsed.consumed > bytes.size()) __builtin_trap();
    if (request.body.size() > limits.max_body_bytes) __builtin_trap();
    // Every view points inside the input.
    for (std::string_view view : {request.method, request.path, request.query, request.body}) {
      if (!view.empty() && (view.data() < bytes.data() || view.data() + view.size() > bytes.data() + bytes.size())) {
        __builtin_trap();
      }
    }
    if (request.header_count > katy::ingress::HttpRequest::kMaxHeaders) __builtin_trap();
    katy::ingress::QueryParam(request.query, "hub.challenge");
  } else if (parsed.status == Status::kError) {
    if (parsed.error_status < 400 || parsed.error_status > 505 || parsed.error.empty()) __builtin_trap();
  } else if (!parsed.head_complete && bytes.size() > limits.max_head_bytes) {
    __builtin_trap();  // more than the head limit without a head is refused, never buffered
  }
  return 0;
}
