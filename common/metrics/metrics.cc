#include "common/metrics/metrics.h"

#include <cmath>
#include <cstdio>

namespace katy::metrics {
namespace {

std::string FormatValue(double value) {
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  if (std::isnan(value)) return "NaN";
  char buf[64];
  if (value == std::floor(value) && std::fabs(value) < 1e15) {
    std::snprintf(buf, sizeof buf, "%.0f", value);
  } else {
    std::snprintf(buf, sizeof buf, "%.9g", value);
  }
  return buf;
}

void AppendLabelValue(std::string& out, const std::string& value) {
  for (char c : value) {
    if (c == '\\') out += "\\\\";
    else if (c == '"') out += "\\\"";
    else if (c == '\n') out += "\\n";
    else out += c;
  }
}

std::string LabelText(const Labels& labels, const char* extra_key = nullptr,
                      const std::string& extra_value = "") {
  if (labels.empty() && extra_key == nullptr) return "";
  std::string out = "{";
  bool first = true;
  for (const auto& [key, value] : labels) {
    if (!first) out += ',';
    first = false;
    out += key + "=\"";
    AppendLabelValue(out, value);
    out += '"';
  }
  if (extra_key != nullptr) {
    if (!first) out += ',';
    out += std::string(extra_key) + "=\"" + extra_value + "\"";
  }
  out += '}';
  return out;
}

void Header(std::string& out, const std::string& name, const std::string& help, const char* type) {
  out += "# HELP " + name + " " + help + "\n# TYPE " + name + " " + type + "\n";
}

}  // namespace

Histogram::Histogram(std::vector<double> bounds)
    : bounds_(std::move(bounds)), buckets_(new std::atomic<uint64_t>[bounds_.size() + 1]) {
  for (size_t i = 0; i <= bounds_.size(); ++i) buckets_[i] = 0;
}

void Histogram::Observe(double value) {
  size_t i = 0;
  while (i < bounds_.size() && value > bounds_[i]) ++i;
  buckets_[i].fetch_add(1, std::memory_order_relaxed);
  sum_.Inc(value);
  count_.fetch_add(1, std::memory_order_relaxed);
}

void Histogram::Read(std::vector<uint64_t>* cumulative, double* sum, uint64_t* count) const {
  cumulative->assign(bounds_.size() + 1, 0);
  uint64_t running = 0;
  for (size_t i = 0; i <= bounds_.size(); ++i) {
    running += buckets_[i].load(std::memory_order_relaxed);
    (*cumulative)[i] = running;
  }
  *sum = sum_.Value();
  *count = running;
}

std::vector<double> LatencyBuckets() {
  return {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};
}

Family<Counter>& Registry::AddCounter(std::string name, std::string help) {
  counters_.push_back(std::make_unique<Family<Counter>>(std::move(name), std::move(help),
                                                        [] { return std::make_unique<Counter>(); }));
  return *counters_.back();
}

Family<Gauge>& Registry::AddGauge(std::string name, std::string help) {
  gauges_.push_back(std::make_unique<Family<Gauge>>(std::move(name), std::move(help),
                                                    [] { return std::make_unique<Gauge>(); }));
  return *gauges_.back();
}

Family<Histogram>& Registry::AddHistogram(std::string name, std::string help, std::vector<double> bounds) {
  histograms_.push_back(std::make_unique<Family<Histogram>>(
      std::move(name), std::move(help), [bounds] { return std::make_unique<Histogram>(bounds); }));
  return *histograms_.back();
}

void Registry::AddCollector(Collector collector) { collectors_.push_back(std::move(collector)); }

std::string Registry::Render() const {
  std::string out;
  for (const auto& family : counters_) {
    Header(out, family->name(), family->help(), "counter");
    family->ForEach([&](const Labels& labels, const Counter& counter) {
      out += family->name() + LabelText(labels) + " " + FormatValue(counter.Value()) + "\n";
    });
  }
  for (const auto& family : gauges_) {
    Header(out, family->name(), family->help(), "gauge");
    family->ForEach([&](const Labels& labels, const Gauge& gauge) {
      out += family->name() + LabelText(labels) + " " + FormatValue(gauge.Value()) + "\n";
    });
  }
  for (const auto& family : histograms_) {
    Header(out, family->name(), family->help(), "histogram");
    family->ForEach([&](const Labels& labels, const Histogram& histogram) {
      std::vector<uint64_t> cumulative;
      double sum = 0;
      uint64_t count = 0;
      histogram.Read(&cumulative, &sum, &count);
      for (size_t i = 0; i < cumulative.size(); ++i) {
        std::string le = i < histogram.bounds().size() ? FormatValue(histogram.bounds()[i]) : "+Inf";
        out += family->name() + "_bucket" + LabelText(labels, "le", le) + " " +
               std::to_string(cumulative[i]) + "\n";
      }
      out += family->name() + "_sum" + LabelText(labels) + " " + FormatValue(sum) + "\n";
      out += family->name() + "_count" + LabelText(labels) + " " + std::to_string(count) + "\n";
    });
  }
  for (const auto& collect : collectors_) {
    for (const auto& family : collect()) {
      Header(out, family.name, family.help, family.type.c_str());
      for (const auto& sample : family.samples) {
        out += family.name + LabelText(sample.labels) + " " + FormatValue(sample.value) + "\n";
      }
    }
  }
  return out;
}

}  // namespace katy::metrics
