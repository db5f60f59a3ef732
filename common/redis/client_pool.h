#pragma once

#include <condition_variable>
#include <memory>
#include <mutex>
#include <vector>

#include "common/redis/redis_client.h"

namespace katy::redis {

// A fixed set of connections shared by many threads (for example Pistache's workers).
// Thread-safe. Acquire() blocks while all connections are lent out.
class ClientPool {
 public:
  ClientPool(const Options& options, size_t size);

  // A connection on loan; returns itself to the pool when destroyed.
  class Lease {
   public:
    Lease(ClientPool* pool, std::unique_ptr<Client> client) : pool_(pool), client_(std::move(client)) {}
    ~Lease();
    Lease(Lease&&) = default;
    Lease(const Lease&) = delete;
    Client& operator*() { return *client_; }
    Client* operator->() { return client_.get(); }

   private:
    ClientPool* pool_;
    std::unique_ptr<Client> client_;
  };

  Lease Acquire();

 private:
  void Release(std::unique_ptr<Client> client);

  std::mutex mutex_;
  std::condition_variable available_;
  std::vector<std::unique_ptr<Client>> idle_;
};

}  // namespace katy::redis
