#pragma once

#include <atomic>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

namespace katy::metrics {

using Labels = std::vector<std::pair<std::string, std::string>>;

// A monotonically increasing count. Lock-free, thread-safe.
class Counter {
 public:
  void Inc(double by = 1) {
    double current = value_.load(std::memory_order_relaxed);
    while (!value_.compare_exchange_weak(current, current + by, std::memory_order_relaxed)) {
    }
  }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// A value that goes up and down. Thread-safe.
class Gauge {
 public:
  void Set(double value) { value_.store(value, std::memory_order_relaxed); }
  double Value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Cumulative buckets (Prometheus "le"). Thread-safe; Observe is lock-free.
class Histogram {
 public:
  explicit Histogram(std::vector<double> bounds);
  void Observe(double value);
  // Snapshot: per-bucket cumulative counts (last is +Inf), sum, count.
  void Read(std::vector<uint64_t>* cumulative, double* sum, uint64_t* count) const;
  const std::vector<double>& bounds() const { return bounds_; }

 private:
  std::vector<double> bounds_;
  std::unique_ptr<std::atomic<uint64_t>[]> buckets_;
  Counter sum_;
  std::atomic<uint64_t> count_{0};
};

// Latency buckets in seconds, from 0.1 ms to 10 s.
std::vector<double> LatencyBuckets();

// One named metric with a label set per child. Children live as long as the registry, so the
// reference returned by WithLabels may be cached by the caller. Thread-safe.
template <typename T>
class Family {
 public:
  Family(std::string name, std::string help, std::function<std::unique_ptr<T>()> make)
      : name_(std::move(name)), help_(std::move(help)), make_(std::move(make)) {}
  T& WithLabels(const Labels& labels) {
    std::lock_guard lock(mutex_);
    auto& slot = children_[labels];
    if (!slot) slot = make_();
    return *slot;
  }
  const std::string& name() const { return name_; }
  const std::string& help() const { return help_; }
  template <typename F>
  void ForEach(F&& visit) const {
    std::lock_guard lock(mutex_);
    for (const auto& [labels, child] : children_) visit(labels, *child);
  }

 private:
  std::string name_;
  std::string help_;
  std::function<std::unique_ptr<T>()> make_;
  mutable std::mutex mutex_;
  std::map<Labels, std::unique_ptr<T>> children_;
};

// Values computed at scrape time (queue depth read from Redis, for example).
struct Sample {
  Labels labels;
  double value;
};
struct CollectedFamily {
  std::string name;
  std::string help;
  std::string type;  // "gauge" or "counter"
  std::vector<Sample> samples;
};
using Collector = std::function<std::vector<CollectedFamily>()>;

// Owns every metric of a process and renders them in the Prometheus text format (0.0.4).
// Registration happens at start-up; everything else is thread-safe.
class Registry {
 public:
  Family<Counter>& AddCounter(std::string name, std::string help);
  Family<Gauge>& AddGauge(std::string name, std::string help);
  Family<Histogram>& AddHistogram(std::string name, std::string help, std::vector<double> bounds);
  void AddCollector(Collector collector);

  std::string Render() const;

 private:
  std::vector<std::unique_ptr<Family<Counter>>> counters_;
  std::vector<std::unique_ptr<Family<Gauge>>> gauges_;
  std::vector<std::unique_ptr<Family<Histogram>>> histograms_;
  std::vector<Collector> collectors_;
};

}  // namespace katy::metrics
