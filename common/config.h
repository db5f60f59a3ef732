#pragma once

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <stdexcept>
#include <string>
#include <string_view>
#include <vector>

namespace katy::config {

// Thrown only at start-up, when settings are missing or malformed. Its what() is the one
// clear line a service prints before exiting with status 2.
class ConfigError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

// Declares one setting. `name` is the environment variable (KATY_REDIS_URL); the matching
// command-line flag is derived from it (--redis-url). A secret is also read from NAME_FILE and
// is never shown in the effective configuration.
struct SettingSpec {
  std::string name;
  std::string default_value;  // used when nothing is given; ignored when required
  std::string help;
  bool required = false;
  bool secret = false;
  // A URL whose credentials are secret (KATY_REDIS_URL): also read from NAME_FILE, and shown
  // with its credentials redacted.
  bool url_with_credentials = false;
};

// The settings every service shares (Redis, shards, key prefix, gRPC, admin, log level, drain).
std::vector<SettingSpec> CommonSpecs(std::string grpc_addr_default, std::string admin_addr_default);
// KATY_LOG_LEVEL, which CommonSpecs includes, for programs that are not services (the emulator).
SettingSpec LogLevelSpec();
// KATY_LOG_MESSAGE_TEXT: whether log lines may carry what people wrote (off by default:
// docs/privacy.md).
SettingSpec LogMessageTextSpec();

struct HostPort {
  std::string host;
  uint16_t port = 0;
  std::string ToString() const;
};

// "host:port", "[v6]:port" or ":port" (loopback). Returns nullopt when malformed.
std::optional<HostPort> ParseHostPort(std::string_view text);

// Where each value comes from, in order of precedence: a command-line flag (--name=value or
// --name value), the environment variable, the environment variable NAME_FILE (secrets only;
// the file's content with trailing newlines removed), the default.
class Settings {
 public:
  using Lookup = std::function<std::optional<std::string>(const std::string&)>;

  // Throws ConfigError for an unknown flag, a flag without a value, a missing required setting
  // or an unreadable *_FILE. `getenv` defaults to the process environment.
  static Settings Load(std::vector<SettingSpec> specs, const std::vector<std::string>& args, Lookup getenv = {});
  static Settings Load(std::vector<SettingSpec> specs, int argc, char** argv);

  // The value of a declared setting ("" when optional and unset). Throws ConfigError for a
  // name that was never declared (a programmer error caught at start-up).
  const std::string& String(const std::string& name) const;
  bool IsSet(const std::string& name) const;
  bool Declared(const std::string& name) const;  // among the specs it was loaded with
  // Typed views; each throws ConfigError naming the setting when the value does not parse.
  int64_t Int(const std::string& name, int64_t min, int64_t max) const;
  double Double(const std::string& name, double min, double max) const;
  bool Bool(const std::string& name) const;  // 1/0, true/false, yes/no, on/off
  HostPort Address(const std::string& name) const;

  // The effective configuration as a JSON object, secrets shown as "[redacted]" (or "" if unset).
  std::string RedactedJson() const;
  // Every value that is a secret (non-empty), for tests that check none reaches a log line.
  std::vector<std::string> SecretValuesForTest() const;
  // A usage text listing every setting, its flag, default and help.
  std::string Usage(std::string_view program) const;
  bool HelpRequested() const { return help_requested_; }

 private:
  struct Entry {
    SettingSpec spec;
    std::string value;
    bool set = false;
  };
  std::map<std::string, Entry> entries_;
  std::vector<std::string> order_;
  bool help_requested_ = false;
};

// "redis://:pw@host:6379/0" -> "redis://[redacted]@host:6379/0"; other values unchanged. Splits at
// the last '@', as redis::ParseUrl does, so every character a password may hold is hidden. Every
// log line and error that shows a URL passes it through here.
std::string RedactUrlCredentials(const std::string& value);

// The whole of the file at `path`; ConfigError "<what>: cannot read <path>" when it cannot be
// read (`what` names the setting or flag that named the file).
std::string ReadWholeFile(const std::string& what, const std::string& path);
// A secret kept in a file (a *_FILE setting, a mounted Secret): its content less trailing
// newlines. ConfigError as ReadWholeFile.
std::string ReadSecretFile(const std::string& what, const std::string& path);

// True for an address only this machine reaches: 127.0.0.0/8, ::1, localhost.
bool IsLoopbackHost(std::string_view host);

// Throws ConfigError naming `setting` when `value` is a known placeholder (the examples'
// "change-me" and its kin) or shorter than `min_length`, saying how to generate a good one.
// An empty value passes: whether the setting is required is the caller's decision.
void CheckSecretStrength(const std::string& setting, const std::string& value, size_t min_length);

// The length below which a bearer token or app secret is refused: Meta's app secrets are 32
// hex digits, and `openssl rand -hex 32` makes 64.
inline constexpr size_t kMinSecretLength = 16;

// A bearer token (`setting`) that guards the gRPC services served at `address`: checked with
// CheckSecretStrength when set, and required (ConfigError saying how to set one) unless the
// address is loopback, where a developer's machine may go without.
void CheckServiceToken(const std::string& setting, const std::string& token, const HostPort& address);

// A certificate chain and its private key, PEM, read from the files the settings name (empty:
// no TLS).
struct TlsFiles {
  std::string cert_pem;
  std::string key_pem;
};

// The settings every Katy service reads (CommonSpecs), typed.
struct CommonConfig {
  HostPort grpc_addr;                              // KATY_GRPC_ADDR: health + katy.v1.Control
  HostPort admin_addr;                             // KATY_ADMIN_ADDR: /metrics, /healthz
  std::string redis_url;                           // KATY_REDIS_URL: one node, or a cluster's seed nodes
  int redis_wait_replicas = 0;                     // KATY_REDIS_WAIT_REPLICAS: WAIT for this many after writes
  std::chrono::milliseconds redis_wait_timeout{};  // KATY_REDIS_WAIT_TIMEOUT_MS
  std::string redis_wait_policy;                   // KATY_REDIS_WAIT_POLICY: "strict" or "degrade"
  int shards = 0;                                  // KATY_SHARDS: fixed per deployment
  std::string key_prefix;                          // KATY_KEY_PREFIX
  std::string control_token;                       // KATY_CONTROL_TOKEN (secret): katy.v1.Control's bearer token
  TlsFiles grpc_tls;                     // KATY_GRPC_TLS_CERT_FILE + KATY_GRPC_TLS_KEY_FILE: the gRPC port speaks TLS
  std::chrono::seconds drain_timeout{};  // KATY_DRAIN_TIMEOUT_S
  std::chrono::milliseconds status_max_age{};  // KATY_STATUS_MAX_AGE_MS: the queue gauges' shared read
  std::string log_level;                       // KATY_LOG_LEVEL
};
// Reads them from settings loaded with CommonSpecs; throws ConfigError naming a bad one.
CommonConfig LoadCommonConfig(const Settings& settings);

// The settings of the stream consumers (responder, sender), with each service's defaults.
struct ConsumerConfig {
  std::chrono::milliseconds lease_ttl{};  // KATY_LEASE_TTL_MS: a dead instance's shards
                                          // (and pending work) are taken over after it
  int workers = 0;                        // KATY_WORKERS: threads doing the Redis work (responder)
  int max_in_flight = 0;                  // KATY_MAX_IN_FLIGHT: entries read and not yet finished,
                                          // those waiting on a skill or Send API call included
  int max_attempts = 0;                   // KATY_MAX_ATTEMPTS: before dead-lettering
  int64_t dlq_max_length = 0;             // KATY_DLQ_MAXLEN: a dead-letter stream's cap
  std::chrono::seconds dlq_retention{};   // KATY_DLQ_RETENTION_D: a dead letter's longest stay
};
// `workers_help` empty: the service has no KATY_WORKERS setting (the sender: defaults.workers
// applies as it is).
std::vector<SettingSpec> ConsumerSpecs(const ConsumerConfig& defaults, const std::string& workers_help,
                                       const std::string& in_flight_help, const std::string& attempts_help);
ConsumerConfig LoadConsumerConfig(const Settings& settings, const ConsumerConfig& defaults);

// KATY_REDIS_URL -> --redis-url.
std::string FlagForSetting(std::string_view name);

}  // namespace katy::config
