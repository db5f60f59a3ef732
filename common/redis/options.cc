#include "common/redis/options.h"

#include <algorithm>
#include <cctype>
#include <charconv>
#include <unordered_set>

#include "common/config.h"
#include "common/redis/cluster_slots.h"

namespace katy::redis {
namespace {

Result<NodeAddress> ParseHostPort(std::string_view text) {
  NodeAddress node{"127.0.0.1", 6379};
  // A bracketed IPv6 address keeps its colons: [::1]:7000.
  const size_t colon = text.rfind(':');
  const bool has_port = colon != std::string_view::npos && text.find(']', colon) == std::string_view::npos;
  if (has_port) {
    std::string_view port = text.substr(colon + 1);
    auto [ptr, ec] = std::from_chars(port.data(), port.data() + port.size(), node.port);
    if (ec != std::errc() || ptr != port.data() + port.size() || node.port <= 0 || node.port > 65535) {
      return Error{ErrorCode::kConfig, "Redis URL has a bad port: " + std::string(port)};
    }
    text = text.substr(0, colon);
  }
  if (text.size() >= 2 && text.front() == '[' && text.back() == ']') text = text.substr(1, text.size() - 2);
  if (!text.empty()) node.host = std::string(text);
  return node;
}

}  // namespace

Options Options::ForNode(const NodeAddress& node) const {
  Options copy = *this;
  copy.host = node.host;
  copy.port = node.port;
  return copy;
}

namespace {

// The commands Katy sends that only read. Anything not named here counts as a write.
bool ReadsOnly(const std::string& command) {
  static const std::unordered_set<std::string> kReads = {
      "EXISTS", "GET",   "MGET",   "HGET",      "HMGET",    "HGETALL", "HLEN", "SMEMBERS", "SISMEMBER", "SCARD",
      "XLEN",   "XINFO", "XRANGE", "XREVRANGE", "XPENDING", "TTL",     "PTTL", "TYPE",     "STRLEN",    "TIME"};
  std::string upper(command);
  std::transform(upper.begin(), upper.end(), upper.begin(), [](unsigned char c) { return std::toupper(c); });
  return kReads.contains(upper);
}

}  // namespace

bool Options::NeedsReplicas(const std::vector<std::string>& argv) const {
  if (wait_replicas <= 0) return false;
  if (!argv.empty() && ReadsOnly(argv[0])) return false;
  const KeyRange keys = CommandKeys(argv);
  for (size_t i = keys.first; i < keys.last && i < argv.size(); ++i) {
    const std::string& key = argv[i];
    const bool unwaited = std::any_of(unwaited_key_prefixes.begin(), unwaited_key_prefixes.end(),
                                      [&key](const std::string& prefix) { return key.starts_with(prefix); });
    if (!unwaited) return true;
  }
  return false;
}

Options Options::WithoutWait() const {
  Options copy = *this;
  copy.wait_replicas = 0;
  return copy;
}

std::vector<std::string> Options::AuthCommand() const {
  if (password.empty()) return {};
  if (username.empty()) return {"AUTH", password};
  return {"AUTH", username, password};
}

Result<Options> ParseUrl(std::string_view url) {
  constexpr std::string_view kScheme = "redis://";
  if (url.substr(0, 9) == "rediss://") {
    // Debian 12's hiredis (0.14) has no TLS: docs/security.md says how to reach a TLS Redis.
    return Error{ErrorCode::kConfig,
                 "rediss:// (TLS) is not supported by this build's hiredis; reach a TLS Redis through a local "
                 "TLS tunnel (docs/security.md, \"Redis\")"};
  }
  if (url.substr(0, kScheme.size()) != kScheme) {
    return Error{ErrorCode::kConfig,
                 "Redis URL must start with redis:// (got '" + config::RedactUrlCredentials(std::string(url)) + "')"};
  }
  Options options;
  std::string_view rest = url.substr(kScheme.size());
  if (auto at = rest.rfind('@'); at != std::string_view::npos) {
    std::string_view userinfo = rest.substr(0, at);
    auto colon = userinfo.find(':');
    if (colon != std::string_view::npos) options.username = std::string(userinfo.substr(0, colon));
    options.password = std::string(colon == std::string_view::npos ? userinfo : userinfo.substr(colon + 1));
    rest = rest.substr(at + 1);
  }
  std::string_view hosts = rest;
  if (auto slash = rest.find('/'); slash != std::string_view::npos) {
    hosts = rest.substr(0, slash);
    std::string_view db = rest.substr(slash + 1);
    if (!db.empty()) {
      auto [ptr, ec] = std::from_chars(db.data(), db.data() + db.size(), options.db);
      if (ec != std::errc() || ptr != db.data() + db.size()) {
        return Error{ErrorCode::kConfig, "Redis URL has a bad database number: " + std::string(db)};
      }
    }
  }
  while (true) {
    const size_t comma = hosts.find(',');
    auto node = ParseHostPort(hosts.substr(0, comma));
    if (!node) return node.error();
    options.seeds.push_back(*node);
    if (comma == std::string_view::npos) break;
    hosts = hosts.substr(comma + 1);
  }
  options.host = options.seeds.front().host;
  options.port = options.seeds.front().port;
  return options;
}

}  // namespace katy::redis
