#include <cstdlib>
#include <sstream>

#include "tools/emulator/chat_page.h"

namespace katy::emulator {

nlohmann::json QueueTotalsFromMetrics(const std::string& metrics_text) {
  nlohmann::json totals{{"available", true},
                        {"in", {{"length", 0}, {"pending", 0}, {"lag", 0}}},
                        {"out", {{"length", 0}, {"pending", 0}, {"lag", 0}}},
                        {"dead_letters", 0}};
  std::istringstream lines(metrics_text);
  for (std::string line; std::getline(lines, line);) {
    if (line.empty() || line[0] == '#') continue;
    const auto space = line.rfind(' ');
    if (space == std::string::npos) continue;
    const auto value = static_cast<int64_t>(std::atof(line.c_str() + space + 1));
    if (line.rfind("katy_dlq_length{", 0) == 0) {
      totals["dead_letters"] = totals["dead_letters"].get<int64_t>() + value;
      continue;
    }
    const char* side = line.find("group=\"responders\"") != std::string::npos ? "in"
                       : line.find("group=\"senders\"") != std::string::npos  ? "out"
                                                                              : nullptr;
    if (side == nullptr) continue;
    for (const char* field : {"length", "pending", "lag"}) {
      if (line.rfind(std::string("katy_stream_") + field + "{", 0) == 0) {
        totals[side][field] = totals[side][field].get<int64_t>() + value;
      }
    }
  }
  return totals;
}

}  // namespace katy::emulator
