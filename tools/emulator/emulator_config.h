#pragma once

#include "common/config.h"
#include "tools/emulator/emulator_server.h"

namespace katy::emulator {

// katy-emulator's settings, declared like the services' (--help lists them). The defaults of
// threads, webhook batch, echoes and the chat page come from EmulatorOptions itself, so they are
// written once. Throws config::ConfigError naming a bad setting.
EmulatorOptions LoadEmulatorOptions(int argc, char** argv, config::Settings* settings_out);

}  // namespace katy::emulator
