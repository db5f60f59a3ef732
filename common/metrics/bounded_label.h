#pragma once

#include <cstddef>
#include <mutex>
#include <set>
#include <string>

namespace katy::metrics {

// How many pages a per-page metric labels by id before the rest share page="other".
inline constexpr size_t kMaxPageSeries = 200;

// Bounds the values a label takes when they come from outside (page ids from webhook bodies):
// the first `max_values` distinct values are kept as they are and every later one becomes
// "other", so no client can make a metric family grow without bound. Thread-safe.
class BoundedLabel {
 public:
  explicit BoundedLabel(size_t max_values = kMaxPageSeries) : max_values_(max_values) {}

  // `value` when it is already known or there is room for it, else "other". The reference
  // stays valid for the object's lifetime.
  const std::string& operator()(const std::string& value) {
    std::lock_guard lock(mutex_);
    if (auto known = values_.find(value); known != values_.end()) return *known;
    if (values_.size() >= max_values_) return other_;
    return *values_.insert(value).first;
  }

 private:
  const size_t max_values_;
  const std::string other_ = "other";
  std::mutex mutex_;
  std::set<std::string, std::less<>> values_;
};

}  // namespace katy::metrics
