#pragma once

#include <string>

#include "katy/v1/events.pb.h"

namespace katy {

// The kind's short lowercase name used in metrics, logs and katyctl ("message", "echo", ...).
std::string EventKindName(katy::v1::EventKind kind);

// "<hostname>-<pid>": names this process as a stream consumer and lease owner. A restarted
// process gets a new name; its old pending entries are taken over like any dead consumer's.
std::string InstanceId();

}  // namespace katy
