#include "services/ingress/handshake.h"

#include "common/hmac.h"

namespace katy::ingress {

HandshakeReply Handshake(std::string_view mode, std::string_view token, std::string_view challenge,
                         std::string_view verify_token) {
  if (mode != "subscribe" || challenge.empty() || verify_token.empty() || !ConstantTimeEquals(token, verify_token)) {
    return {403, "Forbidden"};
  }
  return {200, std::string(challenge)};
}

}  // namespace katy::ingress
