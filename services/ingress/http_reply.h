#pragma once

#include <string>
#include <string_view>

namespace katy::ingress {

// What the webhook port answers to one request.
struct HttpReply {
  int status = 200;
  std::string body;
  int retry_after_s = 0;                                        // > 0: send Retry-After (with 503)
  std::string_view allow;                                       // the methods a 405 lists in Allow (a literal)
  std::string_view content_type = "text/plain; charset=utf-8";  // a literal
};

}  // namespace katy::ingress
