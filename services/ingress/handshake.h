#pragma once

#include <string>
#include <string_view>

namespace katy::ingress {

struct HandshakeReply {
  int status;        // 200 or 403
  std::string body;  // the challenge, byte for byte, on 200
};

// Meta's subscription check, GET /webhook?hub.mode=subscribe&hub.verify_token=T&hub.challenge=C:
// 200 + challenge only when mode is "subscribe", a challenge is given and the token matches
// `verify_token` (constant-time); 403 otherwise. Pure, thread-safe.
HandshakeReply Handshake(std::string_view mode, std::string_view token, std::string_view challenge,
                         std::string_view verify_token);

}  // namespace katy::ingress
