// libFuzzer target: the rules loader over any YAML text. A rules file is written by people
// and reloaded into a running responder: a bad one must be refused with an error naming its
// line, never crash the service.
#include <cstddef>
#include <cstdint>
#include <string>

#include "services/responder/rules.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const std::string yaml(reinterpret_cast<const char*>(data), size);
  auto rules = katy::responder::ParseRules(yaml, "fuzz.yaml");
  if (!rules.ok() && rules.error().message.rfind("fuzz.yaml", 0) != 0) __builtin_trap();  // errors name the file
  return 0;
}
