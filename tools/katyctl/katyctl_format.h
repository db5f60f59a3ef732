#pragma once

#include <chrono>
#include <map>
#include <string>

#include "katy/v1/control.pb.h"

namespace katy::ctl {

// Totals over every shard, for status lines and `top` rates.
struct QueueTotals {
  int64_t in_length = 0, in_pending = 0, in_lag = 0;
  int64_t out_length = 0, out_pending = 0, out_lag = 0;
  int64_t dead_letters = 0;
};
QueueTotals Totals(const katy::v1::Status& status);

// "0-5,9,12-15" for a set of shard numbers. Pure.
std::string ShardRanges(const std::vector<int>& shards);

// The readable `katyctl status` table: the instance line, queue totals, the streams that hold
// anything (every stream with `all`), shard owners per role, and pages with sending state.
// Pure.
std::string RenderStatus(const katy::v1::Status& status, bool all);

// One `katyctl top` frame: RenderStatus plus rates of new entries per second since `previous`
// taken `elapsed` earlier. Pure.
std::string RenderTop(const katy::v1::Status& status, const katy::v1::Status& previous,
                      std::chrono::duration<double> elapsed);

std::string RenderDeadLetters(const katy::v1::ListDeadLettersResponse& letters);

// `katyctl conv show`: who has the thread and since when, the windows (with the time left at
// `now`), state and variables, then the latest events, one per line. Pure.
std::string RenderConversation(const katy::v1::Conversation& conversation, std::chrono::system_clock::time_point now);

// `katyctl forget`: what was erased, one kind a line ("nothing was held" when nothing). Pure.
std::string RenderForgotten(const katy::v1::ForgetResponse& erased);

}  // namespace katy::ctl
