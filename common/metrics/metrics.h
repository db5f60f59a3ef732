#pragma once

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>

#include <string>
#include <vector>

// Katy's metrics are prometheus-cpp's: each service owns a prometheus::Registry, registers its
// families at start-up (prometheus::BuildCounter()...Register(registry)) and the admin server
// renders them. This header adds only what Katy decides on top of the library.
namespace katy::metrics {

// The sources one /metrics page is made of: the service's registry and the collectors that
// compute values at scrape time. Each must outlive whoever renders it.
using Sources = std::vector<const prometheus::Collectable*>;

// Latency buckets in seconds, from 0.1 ms to 10 s, shared by every latency histogram.
const prometheus::Histogram::BucketBoundaries& LatencyBuckets();

// Every family of `sources`, in order, in the Prometheus text format (0.0.4).
std::string Render(const Sources& sources);

}  // namespace katy::metrics
