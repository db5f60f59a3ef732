#include "common/redis/script.h"

#include "common/hmac.h"

#include <openssl/sha.h>

#include "common/redis/replication_health.h"

namespace katy::redis {
bool IsNoScript(const Reply& reply) { return reply.IsError() && reply.str.rfind("NOSCRIPT", 0) == 0; }

namespace {

std::string Sha1Hex(const std::string& text) {
  unsigned char digest[SHA_DIGEST_LENGTH];
  SHA1(reinterpret_cast<const unsigned char*>(text.data()), text.size(), digest);
  return LowerHex(std::string_view(reinterpret_cast<const char*>(digest), sizeof digest));
}

}  // namespace

Script::Script(std::string source) : source_(std::move(source)), sha_(Sha1Hex(source_)) {}

std::vector<std::string> Script::EvalShaCommand(const std::vector<std::string>& keys,
                                                const std::vector<std::string>& args) const {
  std::vector<std::string> argv;
  argv.reserve(3 + keys.size() + args.size());
  argv.emplace_back("EVALSHA");
  argv.push_back(sha_);
  argv.push_back(std::to_string(keys.size()));
  argv.insert(argv.end(), keys.begin(), keys.end());
  argv.insert(argv.end(), args.begin(), args.end());
  return argv;
}

std::vector<std::string> Script::EvalShaCommand(Call&& call) const {
  std::vector<std::string> argv;
  argv.reserve(3 + call.keys.size() + call.args.size());
  argv.emplace_back("EVALSHA");
  argv.push_back(sha_);
  argv.push_back(std::to_string(call.keys.size()));
  for (auto& key : call.keys) argv.push_back(std::move(key));
  for (auto& arg : call.args) argv.push_back(std::move(arg));
  return argv;
}

Result<Reply> Script::Run(Client& client, const std::vector<std::string>& keys,
                          const std::vector<std::string>& args) const {
  auto replies = RunPipelined(client, {Call{keys, args}});
  if (!replies) return replies.error();
  Reply& reply = replies->front();
  if (reply.IsError()) return ReplyError(reply.str);
  return std::move(reply);
}

Result<std::vector<Reply>> Script::RunPipelined(Client& client, const std::vector<Call>& calls) const {
  std::vector<std::vector<std::string>> commands;
  commands.reserve(calls.size());
  for (const auto& call : calls) commands.push_back(EvalShaCommand(call.keys, call.args));
  auto replies = client.Pipeline(commands);
  if (!replies) return replies.error();

  std::vector<size_t> missing;
  for (size_t i = 0; i < replies->size(); ++i) {
    if (IsNoScript((*replies)[i])) missing.push_back(i);
  }
  if (missing.empty()) return replies;

  // EVAL runs the script and caches it on the node that ran it, wherever its keys live (on a
  // cluster, SCRIPT LOAD would reach one node only).
  std::vector<std::vector<std::string>> retry;
  retry.reserve(missing.size());
  for (size_t i : missing) {
    std::vector<std::string> eval = commands[i];
    eval[0] = "EVAL";
    eval[1] = source_;
    retry.push_back(std::move(eval));
  }
  auto retried = client.Pipeline(retry);
  if (!retried) return retried.error();
  for (size_t k = 0; k < missing.size(); ++k) (*replies)[missing[k]] = std::move((*retried)[k]);
  return replies;
}

}  // namespace katy::redis
