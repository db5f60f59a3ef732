#include "tools/emulator/fault_injector.h"

#include <nlohmann/json.hpp>

namespace katy::emulator {

using nlohmann::json;

Result<FaultConfig> ParseFaults(const std::string& text) {
  auto invalid = [](const std::string& why) { return Error{ErrorCode::kInvalid, why}; };
  json doc = json::parse(text, nullptr, false);
  if (!doc.is_object()) return invalid("faults must be a JSON object");
  FaultConfig config;
  try {
    for (const auto& [key, value] : doc.items()) {
      if (key == "seed") {
        config.seed = value.get<uint64_t>();
      } else if (key == "rate_limit") {
        for (const auto& [page, limit] : value.items()) {
          if (!limit.is_number() || limit.get<double>() <= 0) return invalid("rate_limit values must be > 0");
          config.rate_limits[page] = limit.get<double>();
        }
      } else if (key == "error") {
        config.error.http_status = value.value("http_status", 500);
        config.error.code = value.value("code", 1200);
        config.error.subcode = value.value("subcode", 0);
        config.error.message = value.value("message", "(#" + std::to_string(config.error.code) + ") Injected fault");
      } else if (key == "error_rate") {
        config.error_rate = value.get<double>();
      } else if (key == "fail_next") {
        config.fail_next = value.get<int>();
      } else if (key == "latency_ms") {
        if (!value.is_array() || value.size() != 2) return invalid("latency_ms is [min, max]");
        config.latency_min_ms = value[0].get<int>();
        config.latency_max_ms = value[1].get<int>();
        if (config.latency_min_ms < 0 || config.latency_max_ms < config.latency_min_ms) {
          return invalid("latency_ms needs 0 <= min <= max");
        }
      } else if (key == "timeout_rate") {
        config.timeout_rate = value.get<double>();
      } else if (key == "hang_ms") {
        config.hang_ms = value.get<int>();
      } else if (key == "invalid_token") {
        config.invalid_token = value.get<bool>();
      } else {
        return invalid("unknown fault '" + key + "'");
      }
    }
  } catch (const json::exception& e) {
    return invalid(std::string("wrong type: ") + e.what());
  }
  if (config.error_rate < 0 || config.error_rate > 1 || config.timeout_rate < 0 || config.timeout_rate > 1) {
    return invalid("rates are fractions from 0 to 1");
  }
  return config;
}

std::string FaultsToJson(const FaultConfig& config) {
  json out{{"seed", config.seed},
           {"rate_limit", config.rate_limits},
           {"error",
            {{"http_status", config.error.http_status},
             {"code", config.error.code},
             {"subcode", config.error.subcode},
             {"message", config.error.message}}},
           {"error_rate", config.error_rate},
           {"fail_next", config.fail_next},
           {"latency_ms", {config.latency_min_ms, config.latency_max_ms}},
           {"timeout_rate", config.timeout_rate},
           {"hang_ms", config.hang_ms},
           {"invalid_token", config.invalid_token}};
  return out.dump();
}

void FaultInjector::Set(FaultConfig config) {
  std::lock_guard lock(mutex_);
  random_.seed(config.seed);
  config_ = std::move(config);
  recent_.clear();
}

FaultConfig FaultInjector::Get() const {
  std::lock_guard lock(mutex_);
  return config_;
}

void FaultInjector::HeldChanged(int delta) {
  std::lock_guard lock(mutex_);
  held_ += delta;
  most_held_ = std::max(most_held_, held_);
}

int64_t FaultInjector::MostHeld() const {
  std::lock_guard lock(mutex_);
  return most_held_;
}

int64_t FaultInjector::SlowCalls() const {
  std::lock_guard lock(mutex_);
  return slow_calls_;
}

std::map<int, int64_t> FaultInjector::InjectedCounts() const {
  std::lock_guard lock(mutex_);
  return injected_;
}

FaultInjector::Verdict FaultInjector::Next(const std::string& page, int64_t now_ms) {
  std::lock_guard lock(mutex_);
  Verdict verdict;
  std::uniform_real_distribution<double> unit(0.0, 1.0);
  if (config_.latency_max_ms > 0) {
    verdict.delay_ms = std::uniform_int_distribution<int>(config_.latency_min_ms, config_.latency_max_ms)(random_);
  }
  if (config_.timeout_rate > 0 && unit(random_) < config_.timeout_rate) verdict.delay_ms += config_.hang_ms;
  if (verdict.delay_ms >= kSlowCallMs) ++slow_calls_;
  auto inject = [&](GraphError error) {
    ++injected_[error.code];
    verdict.error = std::move(error);
    return verdict;
  };
  if (config_.invalid_token) {
    return inject(GraphError{400, 190, 0, "OAuthException", "Error validating access token: the session is invalid."});
  }
  if (config_.fail_next > 0) {
    --config_.fail_next;
    return inject(config_.error);
  }
  if (config_.error_rate > 0 && unit(random_) < config_.error_rate) return inject(config_.error);

  auto& times = recent_[page];
  while (!times.empty() && times.front() <= now_ms - 1000) times.pop_front();
  auto limit = config_.rate_limits.find(page);
  if (limit == config_.rate_limits.end()) limit = config_.rate_limits.find("*");
  if (limit != config_.rate_limits.end() && static_cast<double>(times.size()) >= limit->second) {
    return inject(GraphError{400, 613, 0, "OAuthException", "(#613) Calls to this api have exceeded the rate limit."});
  }
  times.push_back(now_ms);
  return verdict;
}

double FaultInjector::CallsLastSecond(const std::string& page, int64_t now_ms) {
  std::lock_guard lock(mutex_);
  auto& times = recent_[page];
  while (!times.empty() && times.front() <= now_ms - 1000) times.pop_front();
  return static_cast<double>(times.size());
}

double FaultInjector::LimitFor(const std::string& page) const {
  std::lock_guard lock(mutex_);
  auto limit = config_.rate_limits.find(page);
  if (limit == config_.rate_limits.end()) limit = config_.rate_limits.find("*");
  return limit != config_.rate_limits.end() ? limit->second : 300.0;
}

}  // namespace katy::emulator
