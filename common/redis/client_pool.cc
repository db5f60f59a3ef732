#include "common/redis/client_pool.h"

namespace katy::redis {

ClientPool::ClientPool(const Options& options, size_t size) {
  idle_.reserve(size);
  for (size_t i = 0; i < size; ++i) idle_.push_back(std::make_unique<Client>(options));
}

ClientPool::Lease::~Lease() {
  if (client_) pool_->Release(std::move(client_));
}

ClientPool::Lease ClientPool::Acquire() {
  std::unique_lock lock(mutex_);
  available_.wait(lock, [this] { return !idle_.empty(); });
  auto client = std::move(idle_.back());
  idle_.pop_back();
  return {this, std::move(client)};
}

void ClientPool::Release(std::unique_ptr<Client> client) {
  {
    std::lock_guard lock(mutex_);
    idle_.push_back(std::move(client));
  }
  available_.notify_one();
}

}  // namespace katy::redis
