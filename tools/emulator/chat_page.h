#pragma once

#include <string>

#include <nlohmann/json.hpp>

namespace katy::emulator {

// The Messenger-like chat page served at / (tools/emulator/web/chat.html, embedded at build
// time so the emulator needs no files and no CDN).
const char* ChatPageHtml();

// Sums the queue-depth gauges of a service's /metrics text (katy_stream_length, _pending, _lag
// by group, katy_dlq_length) into {"available":true,"in":{length,pending,lag},"out":{...},
// "dead_letters":n}. Pure.
nlohmann::json QueueTotalsFromMetrics(const std::string& metrics_text);

}  // namespace katy::emulator
