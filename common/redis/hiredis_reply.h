#pragma once

#include <hiredis/hiredis.h>

#include "common/redis/reply.h"

namespace katy::redis {

// An owned copy of a hiredis reply tree (for the connections built on hiredis).
Reply CopyReply(const redisReply* raw);

}  // namespace katy::redis
