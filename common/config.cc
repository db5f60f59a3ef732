#include "common/config.h"

#include <cctype>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "common/defaults.h"
#include "common/json_escape.h"

namespace katy::config {
namespace {

TlsFiles LoadTlsFiles(const std::string& cert_file, const std::string& key_file) {
  if (cert_file.empty() && key_file.empty()) return {};
  if (cert_file.empty() || key_file.empty()) {
    throw ConfigError("KATY_GRPC_TLS_CERT_FILE and KATY_GRPC_TLS_KEY_FILE go together: give both, or neither");
  }
  return {ReadWholeFile("KATY_GRPC_TLS_CERT_FILE", cert_file), ReadWholeFile("KATY_GRPC_TLS_KEY_FILE", key_file)};
}

}  // namespace

SettingSpec LogLevelSpec() { return {"KATY_LOG_LEVEL", "info", "debug, info, warn or error"}; }

SettingSpec LogMessageTextSpec() {
  return {"KATY_LOG_MESSAGE_TEXT", "false",
          "Let log lines carry what people wrote and what the bot answered (debugging only: docs/privacy.md)"};
}

std::vector<SettingSpec> CommonSpecs(std::string grpc_addr_default, std::string admin_addr_default) {
  return {
      {"KATY_REDIS_URL", std::string(defaults::kRedisUrl),
       "Redis to use: redis://[[user]:password@]host:port/db, or a cluster's seed nodes "
       "redis://[[user]:password@]host1:port1,host2:port2/0 (a password is never logged)",
       false, false, true},
      {"KATY_REDIS_WAIT_REPLICAS", "0",
       "Writes count as done only once WAIT confirms this many replicas have them (0: no WAIT)"},
      {"KATY_REDIS_WAIT_TIMEOUT_MS", "1000", "How long WAIT may take before the write counts as unconfirmed"},
      {"KATY_REDIS_WAIT_POLICY", "strict",
       "An unconfirmed write: strict (work on that master waits for its replicas; ingress answers 503) or degrade "
       "(it stands on the master alone, katy_redis_under_replicated says so)"},
      {"KATY_SHARDS", "16", "Number of shards; fixed per deployment (changing it needs a drain of every stream)"},
      {"KATY_KEY_PREFIX", "katy", "Prefix of every Redis key"},
      {"KATY_GRPC_ADDR", std::move(grpc_addr_default), "gRPC health + katy.v1.Control address"},
      {"KATY_ADMIN_ADDR", std::move(admin_addr_default), "Admin HTTP address (/metrics, /healthz)"},
      {"KATY_GRPC_TLS_CERT_FILE", "",
       "PEM certificate chain for the gRPC port (with KATY_GRPC_TLS_KEY_FILE: TLS only; empty: plaintext)"},
      {"KATY_GRPC_TLS_KEY_FILE", "", "PEM private key of KATY_GRPC_TLS_CERT_FILE"},
      {"KATY_CONTROL_TOKEN", "",
       "Bearer token of katy.v1.Control (operators, katyctl); required unless KATY_GRPC_ADDR is loopback", false, true},
      LogLevelSpec(),
      LogMessageTextSpec(),
      {"KATY_DRAIN_TIMEOUT_S", "10", "Seconds to finish in-flight work after SIGTERM"},
      {"KATY_STATUS_MAX_AGE_MS", "10000",
       "How long one scrape's read of the queue gauges serves every instance's /metrics (0: each scrape reads "
       "Redis); Prometheus's scrape interval"},
  };
}

CommonConfig LoadCommonConfig(const Settings& settings) {
  CommonConfig common;
  common.grpc_addr = settings.Address("KATY_GRPC_ADDR");
  common.admin_addr = settings.Address("KATY_ADMIN_ADDR");
  common.redis_url = settings.String("KATY_REDIS_URL");
  common.redis_wait_replicas = static_cast<int>(settings.Int("KATY_REDIS_WAIT_REPLICAS", 0, 16));
  common.redis_wait_timeout = std::chrono::milliseconds(settings.Int("KATY_REDIS_WAIT_TIMEOUT_MS", 1, 60000));
  common.redis_wait_policy = settings.String("KATY_REDIS_WAIT_POLICY");
  if (common.redis_wait_policy != "strict" && common.redis_wait_policy != "degrade") {
    throw ConfigError("KATY_REDIS_WAIT_POLICY must be strict or degrade, not \"" + common.redis_wait_policy + "\"");
  }
  common.shards = static_cast<int>(settings.Int("KATY_SHARDS", 1, 1024));
  common.key_prefix = settings.String("KATY_KEY_PREFIX");
  common.control_token = settings.String("KATY_CONTROL_TOKEN");
  if (!settings.HelpRequested()) {
    common.grpc_tls =
        LoadTlsFiles(settings.String("KATY_GRPC_TLS_CERT_FILE"), settings.String("KATY_GRPC_TLS_KEY_FILE"));
    CheckServiceToken("KATY_CONTROL_TOKEN", common.control_token, common.grpc_addr);
  }
  common.drain_timeout = std::chrono::seconds(settings.Int("KATY_DRAIN_TIMEOUT_S", 0, 3600));
  common.status_max_age = std::chrono::milliseconds(settings.Int("KATY_STATUS_MAX_AGE_MS", 0, 3600000));
  common.log_level = settings.String("KATY_LOG_LEVEL");
  return common;
}

std::vector<SettingSpec> ConsumerSpecs(const ConsumerConfig& defaults, const std::string& workers_help,
                                       const std::string& in_flight_help, const std::string& attempts_help) {
  std::vector<SettingSpec> specs = {
      {"KATY_LEASE_TTL_MS", std::to_string(defaults.lease_ttl.count()),
       "Shard lease TTL; a dead instance's shards and pending work are taken over after it"},
      {"KATY_MAX_IN_FLIGHT", std::to_string(defaults.max_in_flight), in_flight_help},
      {"KATY_MAX_ATTEMPTS", std::to_string(defaults.max_attempts), attempts_help},
      {"KATY_DLQ_MAXLEN", "10000",
       "Most dead letters kept per shard; at the cap each new one drops the oldest (katy_dlq_dropped_total)"},
      {"KATY_DLQ_RETENTION_D", "30",
       "Days a dead letter is kept (it holds what a person wrote or was sent): older ones are dropped"},
  };
  if (!workers_help.empty()) specs.push_back({"KATY_WORKERS", std::to_string(defaults.workers), workers_help});
  return specs;
}

ConsumerConfig LoadConsumerConfig(const Settings& settings, const ConsumerConfig& defaults) {
  ConsumerConfig consumer = defaults;
  consumer.lease_ttl = std::chrono::milliseconds(settings.Int("KATY_LEASE_TTL_MS", 500, 600000));
  if (settings.Declared("KATY_WORKERS")) consumer.workers = static_cast<int>(settings.Int("KATY_WORKERS", 1, 1024));
  consumer.max_in_flight = static_cast<int>(settings.Int("KATY_MAX_IN_FLIGHT", 1, 100000));
  consumer.max_attempts = static_cast<int>(settings.Int("KATY_MAX_ATTEMPTS", 1, 1000));
  consumer.dlq_max_length = settings.Int("KATY_DLQ_MAXLEN", 1, 100'000'000);
  consumer.dlq_retention = std::chrono::hours(24 * settings.Int("KATY_DLQ_RETENTION_D", 1, 3650));
  return consumer;
}

std::string HostPort::ToString() const {
  if (host.find(':') != std::string::npos) return "[" + host + "]:" + std::to_string(port);
  return host + ":" + std::to_string(port);
}

std::optional<HostPort> ParseHostPort(std::string_view text) {
  HostPort out;
  std::string_view port_text;
  if (!text.empty() && text.front() == '[') {
    auto close = text.find(']');
    if (close == std::string_view::npos || close + 1 >= text.size() || text[close + 1] != ':') {
      return std::nullopt;
    }
    out.host = std::string(text.substr(1, close - 1));
    port_text = text.substr(close + 2);
  } else {
    auto colon = text.rfind(':');
    if (colon == std::string_view::npos) return std::nullopt;
    out.host = std::string(text.substr(0, colon));
    port_text = text.substr(colon + 1);
  }
  if (out.host.empty()) out.host = "127.0.0.1";
  if (port_text.empty() || port_text.size() > 5) return std::nullopt;
  unsigned port = 0;
  for (char c : port_text) {
    if (c < '0' || c > '9') return std::nullopt;
    port = port * 10 + static_cast<unsigned>(c - '0');
  }
  if (port > 65535) return std::nullopt;
  out.port = static_cast<uint16_t>(port);
  return out;
}

std::string FlagForSetting(std::string_view name) {
  std::string_view base = name;
  if (base.rfind("KATY_", 0) == 0) base.remove_prefix(5);
  std::string flag = "--";
  for (char c : base) flag += c == '_' ? '-' : static_cast<char>(std::tolower(c));
  return flag;
}

namespace {

std::optional<std::string> ProcessEnv(const std::string& name) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr) return std::nullopt;
  return std::string(value);
}

}  // namespace

std::string ReadWholeFile(const std::string& what, const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw ConfigError(what + ": cannot read " + path);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

std::string ReadSecretFile(const std::string& what, const std::string& path) {
  std::string value = ReadWholeFile(what, path);
  while (!value.empty() && (value.back() == '\n' || value.back() == '\r')) value.pop_back();
  return value;
}

bool IsLoopbackHost(std::string_view host) {
  return host == "localhost" || host == "::1" || host.rfind("127.", 0) == 0;
}

void CheckSecretStrength(const std::string& setting, const std::string& value, size_t min_length) {
  if (value.empty()) return;
  // The examples' values and their usual kin: a secret anyone can read in a repository.
  static const char* const kPlaceholders[] = {"change-me", "changeme", "change_me", "replace-me", "secret",
                                              "password",  "token",    "example",   "xxx",        "todo"};
  std::string lower;
  for (char c : value) lower += static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  const char* how = ": generate one, e.g. `openssl rand -hex 32`, and give it through the setting or its _FILE";
  for (const char* placeholder : kPlaceholders) {
    if (lower == placeholder) throw ConfigError(setting + " is a placeholder value" + how);
  }
  if (value.size() < min_length) {
    throw ConfigError(setting + " is shorter than " + std::to_string(min_length) + " characters" + how);
  }
}

void CheckServiceToken(const std::string& setting, const std::string& token, const HostPort& address) {
  CheckSecretStrength(setting, token, kMinSecretLength);
  if (token.empty() && !IsLoopbackHost(address.host)) {
    throw ConfigError(setting + " is required: the gRPC port " + address.ToString() +
                      " is reachable from the network. Set " + setting + " (or " + setting +
                      "_FILE), e.g. `openssl rand -hex 32`, or bind the port to 127.0.0.1");
  }
}

std::string RedactUrlCredentials(const std::string& value) {
  auto scheme = value.find("://");
  if (scheme == std::string::npos) return value;
  // The last '@', as redis::ParseUrl splits: a password may hold '@', '/', ':' or '%' itself.
  auto at = value.rfind('@');
  if (at == std::string::npos || at < scheme + 3) return value;
  return value.substr(0, scheme + 3) + "[redacted]" + value.substr(at);
}

Settings Settings::Load(std::vector<SettingSpec> specs, int argc, char** argv) {
  std::vector<std::string> args;
  for (int i = 1; i < argc; ++i) args.emplace_back(argv[i]);
  return Load(std::move(specs), args);
}

Settings Settings::Load(std::vector<SettingSpec> specs, const std::vector<std::string>& args, Lookup getenv) {
  if (!getenv) getenv = ProcessEnv;
  Settings settings;
  std::map<std::string, std::string> flag_to_name;
  for (auto& spec : specs) {
    std::string name = spec.name;
    flag_to_name[FlagForSetting(name)] = name;
    settings.order_.push_back(name);
    settings.entries_[name] = Entry{std::move(spec), "", false};
  }

  std::map<std::string, std::string> from_flags;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      settings.help_requested_ = true;
      continue;
    }
    std::string flag = arg;
    std::optional<std::string> value;
    if (auto eq = arg.find('='); eq != std::string::npos) {
      flag = arg.substr(0, eq);
      value = arg.substr(eq + 1);
    }
    auto known = flag_to_name.find(flag);
    if (known == flag_to_name.end()) throw ConfigError("unknown option " + flag + " (see --help)");
    if (!value) {
      if (i + 1 >= args.size()) throw ConfigError("option " + flag + " needs a value");
      value = args[++i];
    }
    from_flags[known->second] = *value;
  }

  for (auto& [name, entry] : settings.entries_) {
    if (auto flag = from_flags.find(name); flag != from_flags.end()) {
      entry.value = flag->second;
      entry.set = true;
    } else if (auto env = getenv(name); env && !env->empty()) {
      entry.value = *env;
      entry.set = true;
    } else if (auto file = entry.spec.secret || entry.spec.url_with_credentials ? getenv(name + "_FILE") : std::nullopt;
               file && !file->empty()) {
      entry.value = ReadSecretFile(name + "_FILE", *file);
      entry.set = true;
    } else {
      entry.value = entry.spec.default_value;
    }
    if (entry.spec.required && (!entry.set || entry.value.empty()) && !settings.help_requested_) {
      std::string how = "set " + name;
      if (entry.spec.secret || entry.spec.url_with_credentials) how += " or " + name + "_FILE";
      throw ConfigError("missing required setting " + name + " (" + how + ", or pass " + FlagForSetting(name) +
                        "): " + entry.spec.help);
    }
  }
  return settings;
}

const std::string& Settings::String(const std::string& name) const {
  auto it = entries_.find(name);
  if (it == entries_.end()) throw ConfigError("setting " + name + " is not declared");
  return it->second.value;
}

bool Settings::Declared(const std::string& name) const { return entries_.contains(name); }

bool Settings::IsSet(const std::string& name) const {
  auto it = entries_.find(name);
  return it != entries_.end() && it->second.set;
}

int64_t Settings::Int(const std::string& name, int64_t min, int64_t max) const {
  const std::string& text = String(name);
  char* end = nullptr;
  errno = 0;
  long long value = std::strtoll(text.c_str(), &end, 10);
  if (text.empty() || *end != '\0' || errno != 0 || value < min || value > max) {
    throw ConfigError(name + "=" + text + ": expected a whole number from " + std::to_string(min) + " to " +
                      std::to_string(max));
  }
  return value;
}

double Settings::Double(const std::string& name, double min, double max) const {
  const std::string& text = String(name);
  char* end = nullptr;
  double value = std::strtod(text.c_str(), &end);
  if (text.empty() || *end != '\0' || !(value >= min && value <= max)) {
    std::ostringstream msg;
    msg << name << "=" << text << ": expected a number from " << min << " to " << max;
    throw ConfigError(msg.str());
  }
  return value;
}

bool Settings::Bool(const std::string& name) const {
  const std::string& text = String(name);
  if (text == "1" || text == "true" || text == "yes" || text == "on") return true;
  if (text == "0" || text == "false" || text == "no" || text == "off" || text.empty()) return false;
  throw ConfigError(name + "=" + text + ": expected 1/0, true/false, yes/no or on/off");
}

HostPort Settings::Address(const std::string& name) const {
  auto parsed = ParseHostPort(String(name));
  if (!parsed) throw ConfigError(name + "=" + String(name) + ": expected host:port");
  return *parsed;
}

std::string Settings::RedactedJson() const {
  std::string out = "{";
  bool first = true;
  for (const auto& name : order_) {
    const Entry& entry = entries_.at(name);
    if (!first) out += ',';
    first = false;
    out += '"';
    AppendJsonEscaped(out, name);
    out += "\":\"";
    if (entry.spec.secret) {
      out += entry.value.empty() ? "" : "[redacted]";
    } else {
      AppendJsonEscaped(out, RedactUrlCredentials(entry.value));
    }
    out += '"';
  }
  out += '}';
  return out;
}

std::vector<std::string> Settings::SecretValuesForTest() const {
  std::vector<std::string> values;
  for (const auto& [name, entry] : entries_) {
    if (entry.spec.secret && !entry.value.empty()) values.push_back(entry.value);
  }
  return values;
}

std::string Settings::Usage(std::string_view program) const {
  std::ostringstream out;
  out << "usage: " << program << " [--flag value ...]\n\nSettings (environment variable, flag):\n";
  for (const auto& name : order_) {
    const Entry& entry = entries_.at(name);
    out << "  " << name << ", " << FlagForSetting(name) << "\n      " << entry.spec.help;
    if (entry.spec.required)
      out << " (required)";
    else if (!entry.spec.default_value.empty())
      out << " (default " << entry.spec.default_value << ")";
    if (entry.spec.secret) out << " [secret; also " << name << "_FILE]";
    if (entry.spec.url_with_credentials) out << " [also " << name << "_FILE]";
    out << "\n";
  }
  return out.str();
}

}  // namespace katy::config
