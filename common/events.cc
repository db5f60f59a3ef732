#include "common/events.h"

#include <unistd.h>

#include <cctype>

namespace katy {

std::string EventKindName(katy::v1::EventKind kind) {
  std::string name = katy::v1::EventKind_Name(kind);
  constexpr std::string_view kPrefix = "EVENT_KIND_";
  if (name.rfind(kPrefix, 0) == 0) name = name.substr(kPrefix.size());
  for (char& c : name) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  return name;
}

std::string InstanceId() {
  char host[256] = {0};
  gethostname(host, sizeof host - 1);
  return std::string(host) + "-" + std::to_string(getpid());
}

}  // namespace katy
