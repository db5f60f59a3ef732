#include "tools/katyctl/katyctl_format.h"

#include <algorithm>
#include <cstdarg>
#include <cstdio>
#include <map>
#include <sstream>

#include "common/message_tags.h"

namespace katy::ctl {

QueueTotals Totals(const katy::v1::Status& status) {
  QueueTotals totals;
  for (const auto& stream : status.streams()) {
    const bool in = stream.stream().size() >= 3 && stream.stream().compare(stream.stream().size() - 3, 3, ":in") == 0;
    (in ? totals.in_length : totals.out_length) += stream.length();
    (in ? totals.in_pending : totals.out_pending) += stream.pending();
    (in ? totals.in_lag : totals.out_lag) += stream.lag();
  }
  for (const auto& dlq : status.dead_letters()) totals.dead_letters += dlq.length();
  return totals;
}

std::string ShardRanges(const std::vector<int>& shards) {
  std::vector<int> sorted(shards);
  std::sort(sorted.begin(), sorted.end());
  std::string out;
  for (size_t i = 0; i < sorted.size();) {
    size_t j = i;
    while (j + 1 < sorted.size() && sorted[j + 1] == sorted[j] + 1) ++j;
    if (!out.empty()) out += ",";
    out += std::to_string(sorted[i]);
    if (j > i) out += "-" + std::to_string(sorted[j]);
    i = j + 1;
  }
  return out.empty() ? "-" : out;
}

namespace {

std::string Uptime(int64_t seconds) {
  if (seconds < 120) return std::to_string(seconds) + "s";
  if (seconds < 7200) return std::to_string(seconds / 60) + "m";
  return std::to_string(seconds / 3600) + "h";
}

std::string Row(const char* format, ...) __attribute__((format(printf, 1, 2)));
std::string Row(const char* format, ...) {
  char buffer[512];
  va_list args;
  va_start(args, format);
  std::vsnprintf(buffer, sizeof buffer, format, args);
  va_end(args);
  return std::string(buffer) + "\n";
}

}  // namespace

std::string RenderStatus(const katy::v1::Status& status, bool all) {
  std::string out;
  out += Row("katy %s  %s  v%s  up %s  %s%s", status.service().c_str(), status.instance().c_str(),
             status.version().c_str(), Uptime(status.uptime_s()).c_str(), status.serving() ? "SERVING" : "NOT_SERVING",
             status.paused() ? "  PAUSED" : "");
  if (status.owned_shards_size() > 0) {
    out += Row("owns shards %s", ShardRanges({status.owned_shards().begin(), status.owned_shards().end()}).c_str());
  }
  for (const auto& held : status.held_shards()) {
    out += Row("HELD shard %d for %llds: %s (Redis cannot serve it; it resumes by itself)", held.shard(),
               static_cast<long long>(held.held_s()), held.reason().c_str());
  }
  const QueueTotals totals = Totals(status);
  out += Row("inbound  %8lld entries  %6lld pending  %6lld lag", static_cast<long long>(totals.in_length),
             static_cast<long long>(totals.in_pending), static_cast<long long>(totals.in_lag));
  out += Row("outbound %8lld entries  %6lld pending  %6lld lag", static_cast<long long>(totals.out_length),
             static_cast<long long>(totals.out_pending), static_cast<long long>(totals.out_lag));
  out += Row("dead letters %lld", static_cast<long long>(totals.dead_letters));
  if (status.conversations_with_others() > 0) {
    out += Row("with others %lld conversations (a person or another app has the thread)",
               static_cast<long long>(status.conversations_with_others()));
  }

  out += "\n" + Row("%-18s %-11s %8s %8s %8s %9s", "STREAM", "GROUP", "LENGTH", "PENDING", "LAG", "CONSUMERS");
  size_t shown = 0;
  for (const auto& stream : status.streams()) {
    if (!all && stream.pending() == 0 && stream.lag() == 0) continue;
    out += Row("%-18s %-11s %8lld %8lld %8lld %9d", stream.stream().c_str(), stream.group().c_str(),
               static_cast<long long>(stream.length()), static_cast<long long>(stream.pending()),
               static_cast<long long>(stream.lag()), stream.consumers());
    ++shown;
  }
  for (const auto& dlq : status.dead_letters()) {
    if (!all && dlq.length() == 0) continue;
    out += Row("%-18s %-11s %8lld %8s %8s %9s", dlq.stream().c_str(), "(dead)", static_cast<long long>(dlq.length()),
               "-", "-", "-");
    ++shown;
  }
  if (shown == 0) out += "(nothing pending or waiting; --all shows every stream)\n";

  std::map<std::string, std::map<std::string, std::vector<int>>> owners;  // role -> owner -> shards
  for (const auto& lease : status.leases()) {
    owners[lease.role()][lease.owner().empty() ? "(nobody)" : lease.owner()].push_back(lease.shard());
  }
  out += "\n" + Row("%-10s %-40s %s", "ROLE", "INSTANCE", "SHARDS");
  for (const auto& [role, by_owner] : owners) {
    for (const auto& [owner, shards] : by_owner) {
      out += Row("%-10s %-40s %s", role.c_str(), owner.c_str(), ShardRanges(shards).c_str());
    }
  }
  if (status.pages_size() > 0) {
    out += "\n" + Row("%-20s %8s %-24s %s", "PAGE", "RATE/S", "PAUSED", "THROTTLED");
    for (const auto& page : status.pages()) {
      std::string rate = page.rate() > 0 ? std::to_string(static_cast<long long>(page.rate())) : "default";
      std::string paused = page.paused() ? "yes (" + page.paused_reason() + ")" : "no";
      std::string throttled =
          page.throttled_for_ms() > 0 ? std::to_string(page.throttled_for_ms() / 1000) + "s left" : "-";
      out += Row("%-20s %8s %-24s %s", page.page_id().c_str(), rate.c_str(), paused.c_str(), throttled.c_str());
    }
  }
  return out;
}

std::string RenderTop(const katy::v1::Status& status, const katy::v1::Status& previous,
                      std::chrono::duration<double> elapsed) {
  const QueueTotals now = Totals(status);
  const QueueTotals before = Totals(previous);
  const double seconds = std::max(elapsed.count(), 0.001);
  std::string out = RenderStatus(status, false);
  out += "\n" + Row("rates: %.1f events/s in, %.1f replies/s out, %.1f dead letters/s",
                    static_cast<double>(now.in_length - before.in_length) / seconds,
                    static_cast<double>(now.out_length - before.out_length) / seconds,
                    static_cast<double>(now.dead_letters - before.dead_letters) / seconds);
  return out;
}

std::string RenderDeadLetters(const katy::v1::ListDeadLettersResponse& letters) {
  if (letters.letters_size() == 0) return "no dead letters\n";
  std::string out = Row("%-16s %-20s %-10s %-22s %8s %s", "DLQ", "ID", "STAGE", "REASON", "ATTEMPTS", "SOURCE");
  for (const auto& letter : letters.letters()) {
    out += Row("%-16s %-20s %-10s %-22s %8d %s %s", letter.dlq_stream().c_str(), letter.id().c_str(),
               letter.stage().c_str(), letter.reason().c_str(), letter.attempts(), letter.source_stream().c_str(),
               letter.source_id().c_str());
  }
  return out;
}

namespace {

// "3h12m" for a duration in ms (negative: "0m").
std::string Span(int64_t ms) {
  const int64_t minutes = std::max<int64_t>(ms, 0) / 60000;
  if (minutes == 0) return std::to_string(std::max<int64_t>(ms, 0) / 1000) + "s";  // a reminder's last minute
  if (minutes < 60) return std::to_string(minutes) + "m";
  if (minutes < 48 * 60) return std::to_string(minutes / 60) + "h" + std::to_string(minutes % 60) + "m";
  return std::to_string(minutes / (24 * 60)) + "d" + std::to_string(minutes / 60 % 24) + "h";
}

std::string Window(bool open, int64_t last_ms, int64_t closes_ms, int64_t now_ms) {
  if (last_ms == 0) return "closed (the user never wrote)";
  if (!open) return "closed (" + Span(now_ms - last_ms) + " since the user's last message)";
  return "open, " + Span(closes_ms - now_ms) + " left";
}

}  // namespace

std::string RenderConversation(const katy::v1::Conversation& conversation, std::chrono::system_clock::time_point now) {
  const int64_t now_ms = std::chrono::duration_cast<std::chrono::milliseconds>(now.time_since_epoch()).count();
  std::string out = Row("conversation %s/%s (shard %d)", conversation.page_id().c_str(), conversation.user_id().c_str(),
                        conversation.shard());
  std::string owner = conversation.owner() == "katy" ? "the bot" : conversation.owner();
  if (conversation.owner() == "263902037430900") owner = "the Page Inbox (263902037430900)";
  if (conversation.owner() != "katy" && conversation.owner_since_ms() > 0) {
    owner += ", for " + Span(now_ms - conversation.owner_since_ms());
  }
  out += Row("  thread:      %s", owner.c_str());
  out += Row(
      "  bot window:  %s",
      Window(conversation.window_open(), conversation.last_user_ms(), conversation.window_closes_ms(), now_ms).c_str());
  if (conversation.ad_window_until_ms() > 0) {
    const int64_t left = conversation.ad_window_until_ms() - now_ms;
    out += Row("  ad window:   started by an ad: 7 days, %s", left > 0 ? (Span(left) + " left").c_str() : "over");
  }
  if (conversation.opted_out_ms() > 0) {
    out += Row("  opted out:   %s ago: only answers to the person's own messages go",
               Span(now_ms - conversation.opted_out_ms()).c_str());
  }
  out += Row("  HUMAN_AGENT: %s", Window(conversation.human_agent_window_open(), conversation.last_user_ms(),
                                         conversation.last_user_ms() + kHumanAgentWindowMs, now_ms)
                                      .c_str());
  const auto& fields = conversation.fields();
  out += Row("  state:       %s", fields.contains("state") ? fields.at("state").c_str() : "(none)");
  for (const auto& reminder : conversation.reminders()) {
    const int64_t left = reminder.due_ms() - now_ms;
    out += Row("  reminder:    %s %s%s", reminder.name().c_str(),
               left > 0 ? ("in " + Span(left)).c_str() : ("due " + Span(-left) + " ago").c_str(),
               reminder.keep() ? " (kept when the person writes)" : "");
  }
  for (const auto& [name, value] : fields) {
    if (name.rfind("var:", 0) == 0) out += Row("  %-12s %s", (name.substr(4) + ":").c_str(), value.c_str());
  }
  if (conversation.events_size() == 0) return out + "  no recent events\n";
  out += "  latest events:\n";
  for (const auto& event : conversation.events()) {
    out += Row("    %-20s %-22s%s %s", event.stream_id().c_str(), event.kind().c_str(),
               event.standby() ? " (standby)" : "", event.text().c_str());
  }
  return out;
}

std::string RenderForgotten(const katy::v1::ForgetResponse& erased) {
  const std::pair<const char*, int> kinds[] = {
      {"conversation", erased.conversations()},          {"reminders", erased.reminders()},
      {"thread ownership", erased.ownership()},          {"inbound events", erased.inbound_events()},
      {"outbound messages", erased.outbound_messages()}, {"dead letters", erased.dead_letters()},
      {"outbound records", erased.outbound_records()}};
  std::ostringstream out;
  for (const auto& [kind, count] : kinds) {
    if (count > 0) out << "  " << kind << ": " << count << "\n";
  }
  const std::string text = out.str();
  return text.empty() ? "  nothing was held\n" : text;
}

}  // namespace katy::ctl
