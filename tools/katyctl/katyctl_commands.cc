#include "tools/katyctl/katyctl_commands.h"

#include <google/protobuf/util/json_util.h>
#include <grpcpp/grpcpp.h>

#include <chrono>
#include <cstdlib>
#include <random>
#include <thread>

#include "common/config.h"
#include "common/defaults.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "katy/v1/control.grpc.pb.h"
#include "katy/v1/outbound.grpc.pb.h"
#include "tools/katyctl/katyctl_format.h"
#include "tools/katyctl/page_setup.h"

namespace katy::ctl {
namespace {

struct Options {
  std::string addr;
  std::string token;       // --token or --token-file; else the command's token setting
  std::string tls_ca_pem;  // --tls-ca (or KATY_CTL_TLS_CA): speak TLS, trusting these roots
  bool json = false;
  bool all = false;
  bool dry_run = false;
  double interval_s = 1;
  int count = 0;  // top: frames to show (0: until interrupted)
  int shard = -1;
  int limit = 100;
  std::string tag;                 // send: a message tag
  std::string key;                 // send: the idempotency key (a fresh one when empty)
  std::string platform;            // profile, subscriptions: "instagram" for the page's Instagram account
  std::vector<std::string> words;  // the command and its arguments
};

// Which service a command talks to when --addr is not given.
std::string DefaultAddress(const std::string& command) {
  if (const char* env = std::getenv("KATY_CTL_ADDR"); env != nullptr && *env != '\0') return env;
  if (command == "pause" || command == "resume" || command == "rate" || command == "send" || command == "message") {
    return std::string(defaults::kSenderGrpc);
  }
  if (command == "rules" || command == "conv" || command == "forget") return std::string(defaults::kResponderGrpc);
  return std::string(defaults::kIngressGrpc);
}

// The commands served by katy.v1.Outbound, which takes the integrations' token.
bool IsOutboundCommand(const std::string& command) { return command == "send" || command == "message"; }

// The token a command presents when neither --token nor --token-file is given: the operators'
// KATY_CONTROL_TOKEN, or KATY_OUTBOUND_TOKEN for send and message, each read as the services
// read a secret (the variable, else NAME_FILE). ConfigError when the file cannot be read.
std::string TokenFromEnvironment(const std::string& command) {
  const std::string name = IsOutboundCommand(command) ? "KATY_OUTBOUND_TOKEN" : "KATY_CONTROL_TOKEN";
  return config::Settings::Load({{name, "", "", false, true}}, std::vector<std::string>{}).String(name);
}

// A key no other call has: the time and a random number.
std::string FreshKey() {
  std::random_device random;
  return "katyctl-" +
         std::to_string(std::chrono::system_clock::now().time_since_epoch() / std::chrono::microseconds(1)) + "-" +
         std::to_string(random());
}

// Plaintext, or TLS trusting the roots --tls-ca gave (a service started with
// KATY_GRPC_TLS_CERT_FILE speaks TLS only).
std::shared_ptr<grpc::ChannelCredentials> Credentials(const Options& options) {
  if (options.tls_ca_pem.empty()) return grpc::InsecureChannelCredentials();
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = options.tls_ca_pem;
  return grpc::SslCredentials(ssl);
}

class Session {
 public:
  Session(const Options& options, std::ostream& out, std::ostream& err)
      : options_(options),
        out_(out),
        err_(err),
        channel_(grpc::CreateChannel(options.addr, Credentials(options))),
        control_(katy::v1::Control::NewStub(channel_)),
        outbound_(katy::v1::Outbound::NewStub(channel_)),
        health_(grpc::health::v1::Health::NewStub(channel_)) {}

  // Prepares a call: a deadline, and the bearer token when given.
  std::unique_ptr<grpc::ClientContext> Context(std::chrono::seconds deadline = std::chrono::seconds(5)) {
    auto context = std::make_unique<grpc::ClientContext>();
    context->set_deadline(std::chrono::system_clock::now() + deadline);
    if (!options_.token.empty()) context->AddMetadata("authorization", "Bearer " + options_.token);
    return context;
  }

  // One clear line for a failed call; returns the exit status.
  int Fail(const grpc::Status& status) {
    if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
        status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
      err_ << "katyctl: cannot reach a Katy service at " << options_.addr
           << " (is it running? see --addr): " << status.error_message() << "\n";
    } else if (status.error_code() == grpc::StatusCode::UNAUTHENTICATED) {
      const bool outbound = !options_.words.empty() && IsOutboundCommand(options_.words[0]);
      err_ << "katyctl: " << options_.addr << " refused the call: give the "
           << (outbound ? "outbound token with --token or --token-file (or KATY_OUTBOUND_TOKEN[_FILE])\n"
                        : "control token with --token or --token-file (or KATY_CONTROL_TOKEN[_FILE])\n");
    } else {
      err_ << "katyctl: " << status.error_message() << "\n";
    }
    return 1;
  }

  template <typename Message>
  void PrintJson(const Message& message) {
    std::string json;
    google::protobuf::util::JsonPrintOptions print;
    print.preserve_proto_field_names = true;
    print.always_print_primitive_fields = true;
    if (!google::protobuf::util::MessageToJsonString(message, &json, print).ok()) json = "null";
    out_ << json << "\n";
  }

  int Status() {
    katy::v1::Status status;
    auto result = control_->GetStatus(Context().get(), {}, &status);
    if (!result.ok()) return Fail(result);
    if (options_.json)
      PrintJson(status);
    else
      out_ << RenderStatus(status, options_.all);
    return 0;
  }

  int Top() {
    katy::v1::Status previous;
    auto result = control_->GetStatus(Context().get(), {}, &previous);
    if (!result.ok()) return Fail(result);
    auto previous_at = std::chrono::steady_clock::now();
    for (int frame = 0; options_.count == 0 || frame < options_.count; ++frame) {
      std::this_thread::sleep_for(std::chrono::duration<double>(options_.interval_s));
      katy::v1::Status status;
      result = control_->GetStatus(Context().get(), {}, &status);
      if (!result.ok()) return Fail(result);
      const auto now = std::chrono::steady_clock::now();
      if (options_.json) {
        PrintJson(status);
      } else {
        out_ << "\033[H\033[2J" << RenderTop(status, previous, now - previous_at) << std::flush;
      }
      previous = status;
      previous_at = now;
    }
    return 0;
  }

  int Health() {
    grpc::health::v1::HealthCheckResponse response;
    auto result = health_->Check(Context().get(), {}, &response);
    if (!result.ok()) return Fail(result);
    const std::string status = grpc::health::v1::HealthCheckResponse::ServingStatus_Name(response.status());
    if (options_.json)
      out_ << R"({"status":")" << status << "\"}\n";
    else
      out_ << status << "\n";
    return response.status() == grpc::health::v1::HealthCheckResponse::SERVING ? 0 : 1;
  }

  int DeadLetters(const std::vector<std::string>& words) {
    const std::string action = words.size() > 1 ? words[1] : "list";
    if (action == "list" || action == "show") {
      katy::v1::ListDeadLettersRequest request;
      request.set_all_shards(options_.shard < 0);
      request.set_shard(std::max(options_.shard, 0));
      request.set_limit(action == "show" ? 100000 : options_.limit);
      katy::v1::ListDeadLettersResponse response;
      auto result = control_->ListDeadLetters(Context().get(), request, &response);
      if (!result.ok()) return Fail(result);
      if (action == "list") {
        if (options_.json)
          PrintJson(response);
        else
          out_ << RenderDeadLetters(response);
        return 0;
      }
      if (words.size() < 3) return UsageError("dlq show needs a dead letter: STREAM/ID (from dlq list)");
      for (const auto& letter : response.letters()) {
        if (letter.dlq_stream() + "/" + letter.id() == words[2] || letter.id() == words[2]) {
          PrintJson(letter);
          return 0;
        }
      }
      err_ << "katyctl: no dead letter " << words[2] << "\n";
      return 1;
    }
    if (action == "replay") {
      katy::v1::ReplayDeadLettersRequest request;
      for (size_t i = 2; i < words.size(); ++i) {
        if (words[i] == "--all" || words[i] == "all") {
          request.set_all(true);
          continue;
        }
        auto slash = words[i].rfind('/');
        if (slash == std::string::npos) return UsageError("dlq replay takes STREAM/ID ... or --all");
        auto* ref = request.add_letters();
        ref->set_dlq_stream(words[i].substr(0, slash));
        ref->set_id(words[i].substr(slash + 1));
      }
      if (!request.all() && request.letters_size() == 0) return UsageError("dlq replay takes STREAM/ID ... or --all");
      katy::v1::ReplayDeadLettersResponse response;
      auto result = control_->ReplayDeadLetters(Context().get(), request, &response);
      if (!result.ok()) return Fail(result);
      if (options_.json)
        PrintJson(response);
      else
        out_ << "replayed " << response.replayed() << " dead letter(s)\n";
      return 0;
    }
    return UsageError("dlq takes list, show or replay");
  }

  int Pause(bool pause, const std::vector<std::string>& words) {
    katy::v1::PauseRequest request;
    if (words.size() > 1) request.set_page_id(words[1]);
    katy::v1::PauseResponse response;
    auto result = pause ? control_->Pause(Context().get(), request, &response)
                        : control_->Resume(Context().get(), request, &response);
    if (!result.ok()) return Fail(result);
    out_ << (pause ? "paused " : "resumed ") << (request.page_id().empty() ? "everything" : "page " + request.page_id())
         << "\n";
    return 0;
  }

  int Rate(const std::vector<std::string>& words) {
    if (words.size() != 3) return UsageError("rate takes PAGE and messages per second (PAGE * for the default)");
    char* end = nullptr;
    double rate = std::strtod(words[2].c_str(), &end);
    if (*end != '\0' || !(rate > 0)) return UsageError("the rate must be a number above 0");
    katy::v1::SetRateLimitRequest request;
    request.set_page_id(words[1]);
    request.set_per_second(rate);
    katy::v1::SetRateLimitResponse response;
    auto result = control_->SetRateLimit(Context().get(), request, &response);
    if (!result.ok()) return Fail(result);
    out_ << "page " << words[1] << ": " << words[2] << " messages/s\n";
    return 0;
  }

  int Rules(const std::vector<std::string>& words) {
    if (words.size() != 2 || words[1] != "reload") return UsageError("rules takes reload");
    katy::v1::ReloadRulesResponse response;
    auto result = control_->ReloadRules(Context().get(), {}, &response);
    if (!result.ok()) return Fail(result);
    out_ << "rules reloaded: " << response.rules() << " rules\n";
    return 0;
  }

  // conv show|pause|resume PAGE PSID [REASON], conv cancel PAGE PSID NAME
  int Conversation(const std::vector<std::string>& words) {
    if (words.size() < 4 ||
        (words[1] != "show" && words[1] != "pause" && words[1] != "resume" && words[1] != "cancel")) {
      return UsageError("conv takes show, pause, resume or cancel, then PAGE and PSID");
    }
    if (words[1] == "cancel") return CancelReminder(words);
    if (words[1] == "show") {
      katy::v1::GetConversationRequest request;
      request.set_page_id(words[2]);
      request.set_user_id(words[3]);
      request.set_events(options_.limit == 100 ? 10 : options_.limit);
      katy::v1::Conversation conversation;
      auto result = control_->GetConversation(Context().get(), request, &conversation);
      if (!result.ok()) return Fail(result);
      if (options_.json)
        PrintJson(conversation);
      else
        out_ << RenderConversation(conversation, std::chrono::system_clock::now());
      return 0;
    }
    katy::v1::SetConversationOwnerRequest request;
    request.set_page_id(words[2]);
    request.set_user_id(words[3]);
    request.set_pause(words[1] == "pause");
    if (words.size() > 4) request.set_reason(words[4]);
    katy::v1::SetConversationOwnerResponse response;
    auto result = control_->SetConversationOwner(Context().get(), request, &response);
    if (!result.ok()) return Fail(result);
    out_ << (request.pause() ? "paused: the thread goes to the Page Inbox; the bot stays quiet in "
                             : "resumed: the bot has the thread again in ")
         << words[2] << "/" << words[3] << "\n";
    return 0;
  }

  // conv cancel PAGE PSID NAME: the conversation's pending reminder NAME is cancelled.
  int CancelReminder(const std::vector<std::string>& words) {
    if (words.size() != 5) return UsageError("conv cancel takes PAGE, PSID and the reminder's NAME");
    katy::v1::CancelReminderRequest request;
    request.set_page_id(words[2]);
    request.set_user_id(words[3]);
    request.set_name(words[4]);
    katy::v1::CancelReminderResponse response;
    auto result = control_->CancelReminder(Context().get(), request, &response);
    if (!result.ok()) return Fail(result);
    if (!response.cancelled()) {
      out_ << "no reminder " << words[4] << " is pending in " << words[2] << "/" << words[3]
           << " (never set, cancelled, or fired already)\n";
      return 1;
    }
    out_ << "cancelled: reminder " << words[4] << " in " << words[2] << "/" << words[3] << "\n";
    return 0;
  }

  // forget PAGE PSID: everything Katy holds about the person on the page is erased.
  int Forget(const std::vector<std::string>& words) {
    if (words.size() != 3) return UsageError("forget takes PAGE and PSID");
    katy::v1::ForgetRequest request;
    request.set_page_id(words[1]);
    request.set_user_id(words[2]);
    katy::v1::ForgetResponse response;
    auto result = control_->Forget(Context().get(), request, &response);
    if (!result.ok()) return Fail(result);
    if (options_.json) {
      PrintJson(response);
      return 0;
    }
    out_ << "forgotten: " << words[1] << "/" << words[2] << "\n" << RenderForgotten(response);
    return 0;
  }

  // send PAGE PSID TEXT: a person's message through the outbound API (katyctl is a person at a
  // terminal). The key makes a retried command send once; a fresh one is made when not given.
  int Send(const std::vector<std::string>& words) {
    if (words.size() != 4 || words[3].empty()) return UsageError("send takes PAGE, PSID and the text");
    katy::v1::OutboundSendRequest request;
    request.set_page_id(words[1]);
    request.set_recipient_id(words[2]);
    request.set_text(words[3]);
    request.set_tag(options_.tag);
    request.set_from_person(true);
    request.set_idempotency_key(options_.key.empty() ? FreshKey() : options_.key);
    katy::v1::OutboundSendResponse response;
    auto result = outbound_->Send(Context().get(), request, &response);
    if (!result.ok()) return Fail(result);
    if (options_.json) {
      PrintJson(response);
    } else {
      out_ << (response.duplicate() ? "already queued (same key): " : "queued: ") << response.id() << "\n";
    }
    return 0;
  }

  // message ID: where an outbound message is.
  int Message(const std::vector<std::string>& words) {
    if (words.size() != 2) return UsageError("message takes the id that send printed");
    katy::v1::GetOutboundMessageRequest request;
    request.set_id(words[1]);
    katy::v1::OutboundMessageStatus status;
    auto result = outbound_->GetMessage(Context().get(), request, &status);
    if (!result.ok()) return Fail(result);
    if (options_.json) {
      PrintJson(status);
    } else {
      out_ << status.state();
      if (!status.message_id().empty()) out_ << " (Meta's id " << status.message_id() << ")";
      if (!status.reason().empty()) out_ << ": " << status.reason();
      out_ << "\n";
    }
    return status.state() == "failed" ? 1 : 0;
  }

  int Drain() {
    katy::v1::DrainResponse response;
    auto result = control_->Drain(Context().get(), {}, &response);
    if (!result.ok()) return Fail(result);
    out_ << "draining " << options_.addr << "\n";
    return 0;
  }

  int UsageError(const std::string& message) {
    err_ << "katyctl: " << message << " (katyctl --help)\n";
    return 2;
  }

 private:
  const Options& options_;
  std::ostream& out_;
  std::ostream& err_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<katy::v1::Control::Stub> control_;
  std::unique_ptr<katy::v1::Outbound::Stub> outbound_;
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

// The default addresses as shell assignments, for scripts/up.sh (`eval "$(katyctl defaults)"`).
void PrintDefaults(std::ostream& out) {
  const std::pair<const char*, std::string_view> all[] = {
      {"KATY_DEFAULT_REDIS_URL", defaults::kRedisUrl},
      {"KATY_DEFAULT_HTTP_ADDR", defaults::kIngressHttp},
      {"KATY_DEFAULT_INGRESS_GRPC_ADDR", defaults::kIngressGrpc},
      {"KATY_DEFAULT_INGRESS_ADMIN_ADDR", defaults::kIngressAdmin},
      {"KATY_DEFAULT_RESPONDER_GRPC_ADDR", defaults::kResponderGrpc},
      {"KATY_DEFAULT_RESPONDER_ADMIN_ADDR", defaults::kResponderAdmin},
      {"KATY_DEFAULT_SENDER_GRPC_ADDR", defaults::kSenderGrpc},
      {"KATY_DEFAULT_SENDER_ADMIN_ADDR", defaults::kSenderAdmin},
      {"KATY_DEFAULT_EMULATOR_ADDR", defaults::kEmulator},
  };
  for (const auto& [name, value] : all) out << name << "=" << value << "\n";
}

}  // namespace

std::string Usage() {
  const std::string addresses = "ingress " + std::string(defaults::kIngressGrpc) +
                                " (status, top,\nhealth, dlq, drain), responder " +
                                std::string(defaults::kResponderGrpc) + " (rules, conv), sender " +
                                std::string(defaults::kSenderGrpc) + " (pause, resume,\nrate, send, message)";
  return R"(usage: katyctl [--addr HOST:PORT] [--token TOKEN | --token-file FILE] [--tls-ca FILE] [--json] COMMAND

  status [--all]              streams, pending, lag, dead letters, shard owners, pages
  top [--interval S] [--count N]   status refreshed, with rates (Ctrl-C to stop)
  health                      grpc.health.v1 status of the service (exit 1 unless SERVING)
  dlq list [--shard N] [--limit N]
  dlq show STREAM/ID          one dead letter, decoded to JSON
  dlq replay STREAM/ID ... | --all    put dead letters back on their stream, in order
  pause [PAGE]                sender: stop sending for PAGE, or every page (responder: all)
  resume [PAGE]
  rate PAGE N                 sender: N messages/s for PAGE (* for the default), every sender
  rules reload                responder: reload the rules file
  conv show PAGE PSID [--limit N]   responder: a conversation's state, who has its thread,
                              its windows and latest N events (10)
  conv pause PAGE PSID [REASON]     a person takes the thread (passed to the Page Inbox):
                              the bot stays quiet in it, in order with its other events
  conv resume PAGE PSID [REASON]    the thread goes back to the bot
  conv cancel PAGE PSID NAME        cancel the conversation's pending reminder NAME
  forget PAGE PSID            erase everything Katy holds about the person on PAGE: their
                              conversation, reminders, queued events and messages (never sent
                              afterwards), dead letters, outbound records (docs/privacy.md)
  send PAGE PSID TEXT [--tag TAG] [--key KEY]   sender: a person's message, in order with the
                              bot's replies; outside 24 h only with a tag (HUMAN_AGENT: 7 days);
                              the same KEY again sends nothing more (default: a fresh one)
  message ID                  sender: queued, sent (Meta's id) or failed (why)
  drain                       graceful shutdown of the service, as SIGTERM
  defaults                    every default address, as shell assignments

Page setup, through the Graph API with the page's token (KATY_GRAPH_URL, KATY_PAGE_TOKEN or
KATY_PAGE_TOKENS_FILE, KATY_APP_SECRET, as for the sender; PAGE may be left out with one page):
  profile get [PAGE]          the page's Messenger Profile, as YAML
  profile apply FILE [PAGE] [--dry-run]   set the fields FILE gives (deploy/profile.yaml);
                              checks Meta's limits first and prints what changes
  subscriptions check [PAGE]  the webhook fields Katy handles that the page does not send
                              (exit 1 when any is missing; KATY_APP_ID picks the app)
  subscriptions fix [PAGE]    subscribe the app to the missing ones
  PAGE may be an Instagram account (KATY_PAGE_TOKENS_FILE), or --platform instagram names the
  account linked to PAGE: its ice breakers and persistent menu, its webhook fields. The
  comments' field (feed; comments, live_comments) is wanted when KATY_RULES has comment rules.

--addr defaults to the service the command is for: )" +
         addresses + R"(; KATY_CTL_ADDR overrides. The token defaults to KATY_CONTROL_TOKEN (or
KATY_CONTROL_TOKEN_FILE), and for send and message, which the integrations' katy.v1.Outbound
serves, to KATY_OUTBOUND_TOKEN (or KATY_OUTBOUND_TOKEN_FILE). --tls-ca (or KATY_CTL_TLS_CA) names
the PEM roots to trust when the service speaks TLS (KATY_GRPC_TLS_CERT_FILE).
)";
}

int RunKatyctl(const std::vector<std::string>& args, std::ostream& out, std::ostream& err) {
  Options options;
  bool token_given = false;
  if (const char* ca = std::getenv("KATY_CTL_TLS_CA"); ca != nullptr && *ca != '\0') {
    try {
      options.tls_ca_pem = config::ReadWholeFile("KATY_CTL_TLS_CA", ca);
    } catch (const config::ConfigError& e) {
      err << "katyctl: " << e.what() << "\n";
      return 2;
    }
  }
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    auto value = [&](const char* name) -> std::string {
      if (i + 1 >= args.size()) throw std::invalid_argument(std::string(name) + " needs a value");
      return args[++i];
    };
    try {
      if (arg == "--help" || arg == "-h") {
        out << Usage();
        return 0;
      } else if (arg == "--addr") {
        options.addr = value("--addr");
      } else if (arg == "--token") {
        options.token = value("--token");
        token_given = true;
      } else if (arg == "--token-file") {
        options.token = config::ReadSecretFile("the token file", value("--token-file"));
        token_given = true;
      } else if (arg == "--tls-ca") {
        options.tls_ca_pem = config::ReadWholeFile("the roots file", value("--tls-ca"));
      } else if (arg == "--json") {
        options.json = true;
      } else if (arg == "--dry-run") {
        options.dry_run = true;
      } else if (arg == "--all" && (options.words.empty() || options.words[0] != "dlq")) {
        options.all = true;
      } else if (arg == "--interval") {
        options.interval_s = std::stod(value("--interval"));
      } else if (arg == "--count") {
        options.count = std::stoi(value("--count"));
      } else if (arg == "--shard") {
        options.shard = std::stoi(value("--shard"));
      } else if (arg == "--limit") {
        options.limit = std::stoi(value("--limit"));
      } else if (arg == "--tag") {
        options.tag = value("--tag");
      } else if (arg == "--key") {
        options.key = value("--key");
      } else if (arg == "--platform") {
        options.platform = value("--platform");
      } else {
        options.words.push_back(arg);
      }
    } catch (const std::exception& e) {
      err << "katyctl: " << arg << ": " << e.what() << " (katyctl --help)\n";
      return 2;
    }
  }
  if (options.words.empty()) {
    err << Usage();
    return 2;
  }
  const std::string& command = options.words[0];
  if (command == "defaults") {
    PrintDefaults(out);
    return 0;
  }
  // Page setup talks to the Graph API, not to a Katy service.
  if (command == "profile" || command == "subscriptions")
    return RunPageSetup(options.words, options.dry_run, options.platform, out, err);
  if (options.addr.empty()) options.addr = DefaultAddress(command);
  if (!token_given) {
    try {
      options.token = TokenFromEnvironment(command);
    } catch (const config::ConfigError& e) {
      err << "katyctl: " << e.what() << "\n";
      return 2;
    }
  }
  Session session(options, out, err);
  if (command == "status") return session.Status();
  if (command == "top") return session.Top();
  if (command == "health") return session.Health();
  if (command == "dlq") return session.DeadLetters(options.words);
  if (command == "pause") return session.Pause(true, options.words);
  if (command == "resume") return session.Pause(false, options.words);
  if (command == "rate") return session.Rate(options.words);
  if (command == "rules") return session.Rules(options.words);
  if (command == "conv") return session.Conversation(options.words);
  if (command == "forget") return session.Forget(options.words);
  if (command == "send") return session.Send(options.words);
  if (command == "message") return session.Message(options.words);
  if (command == "drain") return session.Drain();
  err << "katyctl: unknown command '" << command << "' (katyctl --help)\n";
  return 2;
}

}  // namespace katy::ctl
