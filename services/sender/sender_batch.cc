// The sender's batches: the first messages of several conversations checked in one round
// trip, each then called on its own, and the records of those whose calls answered meanwhile
// written together.
#include <algorithm>
#include <map>
#include <mutex>
#include <variant>

#include "services/sender/sender_handler.h"
#include "services/sender/sender_internal.h"

namespace katy::sender {

// A batch's messages between their calls and the continuations that finish them. A message's
// answer makes it ready; the first ready since the last continuation ran asks the consumer
// for one (its Resume). The consumer runs a batch's continuations one after another, so only
// the ready list is shared with the loop thread.
class SenderHandler::BatchRun : public std::enable_shared_from_this<BatchRun> {
 public:
  BatchRun(const SenderHandler& handler, redis::Resume resume) : handler_(handler), resume_(std::move(resume)) {}

  std::vector<DeliveryPtr> deliveries;  // by index in the batch; null for an entry that was none
  std::vector<size_t> later;            // the messages left kLater, in the batch's order

  // The Resume of message `index`: its continuation (one result) waits for the batch's next.
  redis::Resume ResumeOf(size_t index) {
    return redis::Resume(
        [self = shared_from_this(), index](redis::Continuation finish) { self->Ready(index, std::move(finish)); });
  }
  // The continuations of the messages that answered since the last call, by index.
  std::vector<std::pair<size_t, redis::Continuation>> TakeReady() {
    std::lock_guard lock(mutex_);
    asked_ = false;
    std::vector<std::pair<size_t, redis::Continuation>> ready;
    ready.swap(ready_);
    std::sort(ready.begin(), ready.end(), [](const auto& a, const auto& b) { return a.first < b.first; });
    return ready;
  }

 private:
  void Ready(size_t index, redis::Continuation finish) {
    bool ask = false;
    {
      std::lock_guard lock(mutex_);
      ready_.emplace_back(index, std::move(finish));
      ask = !asked_;
      asked_ = true;
    }
    if (!ask) return;  // the continuation asked for already takes this one too
    resume_([self = shared_from_this()](redis::Client& client, const redis::Resume&) {
      return self->handler_.Drain(client, *self);
    });
  }

  const SenderHandler& handler_;
  redis::Resume resume_;
  std::mutex mutex_;
  std::vector<std::pair<size_t, redis::Continuation>> ready_;
  bool asked_ = false;  // a continuation is asked for and has not taken the ready ones yet
};

std::variant<SenderHandler::DeliveryPtr, redis::HandleResult> SenderHandler::DeliveryOf(
    const redis::BatchEntry& one) const {
  auto delivery = std::make_shared<Delivery>();
  Delivery& d = *delivery;
  const redis::StreamEntry& entry = *one.entry;
  auto payload = entry.Field("pb");
  if (!payload || !d.message.ParseFromString(*payload)) return redis::HandleResult::Poison("undecodable_message");
  d.entry = entry;
  d.fence = one.fence;
  d.in_hand = one.in_hand;
  d.shard = ShardOf(d.message.page_id(), d.message.recipient_id(), keys_.shards());
  d.sent_key = keys_.Sent(d.shard, d.message.id());
  d.delivered = DeliveredMark(keys_, d.shard, d.message, legacy_before_ms_);
  if (std::optional<PlannedParts> plan = PlanParts(d.message)) d.plan = std::move(*plan);
  // A message of one part (most are) that can go as it is asks for its slot and marks itself
  // in flight in the checks' round trip: two round trips fewer (bench/RESULTS.md, issue 18).
  if (auto token = tokens_.For(d.message.page_id())) d.token = std::move(*token);
  d.first_slot_taken = !d.token.empty() && d.plan.refusal.empty() && d.plan.bodies.size() == 1 &&
                       !internal::ReusableMediaFor(d.message, d.plan.bodies[0]);
  return delivery;
}

std::vector<redis::HandleResult> SenderHandler::HandleBatch(redis::Client& client,
                                                            const std::vector<redis::BatchEntry>& batch,
                                                            const redis::Resume& resume) const {
  auto run = std::make_shared<BatchRun>(*this, resume);
  std::vector<std::optional<redis::HandleResult>> results(batch.size());
  std::vector<std::optional<Checks>> checks(batch.size());
  std::vector<std::vector<std::string>> commands;  // every message's checks, in the batch's order
  run->deliveries.resize(batch.size());
  for (size_t i = 0; i < batch.size(); ++i) {
    auto delivery = DeliveryOf(batch[i]);
    if (auto* failed = std::get_if<redis::HandleResult>(&delivery)) {
      results[i] = *failed;
      continue;
    }
    DeliveryPtr d = std::get<DeliveryPtr>(std::move(delivery));
    d->index = i;
    auto planned = ChecksOf(client, *d);
    if (!planned) {
      results[i] = redis::HandleResult::RedisFailed(planned.error());
      continue;
    }
    commands.insert(commands.end(), planned->commands.begin(), planned->commands.end());
    checks[i] = std::move(*planned);
    run->deliveries[i] = std::move(d);
  }
  auto replies =
      commands.empty() ? Result<std::vector<redis::Reply>>(std::vector<redis::Reply>{}) : client.Pipeline(commands);
  std::span<const redis::Reply> unread;
  if (replies) unread = *replies;
  for (size_t i = 0; i < batch.size(); ++i) {
    if (results[i]) continue;
    const DeliveryPtr& d = run->deliveries[i];
    if (!replies) {
      results[i] = redis::HandleResult::RedisFailed(replies.error());
      continue;
    }
    const std::span<const redis::Reply> own = unread.first(checks[i]->commands.size());
    unread = unread.subspan(own.size());
    if (auto finished = JudgeChecks(client, *d, *checks[i], own)) {
      results[i] = *finished;
      continue;
    }
    results[i] = Begin(client, d, run->ResumeOf(i));
    if (results[i]->kind == redis::HandleResult::Kind::kLater) run->later.push_back(i);
  }
  std::vector<redis::HandleResult> out;
  out.reserve(results.size());
  for (auto& result : results) out.push_back(std::move(*result));
  return out;
}

std::vector<redis::HandleResult> SenderHandler::Drain(redis::Client& client, BatchRun& run) const {
  std::map<size_t, redis::HandleResult> finished;
  std::vector<const Delivery*> to_record;
  for (auto& [index, finish] : run.TakeReady()) {
    Delivery& d = *run.deliveries[index];
    d.deferred_records = &to_record;
    finished.emplace(index, finish(client, run.ResumeOf(index)).front());
    d.deferred_records = nullptr;
  }
  if (!to_record.empty()) {
    if (auto recorded = RecordDeliveries(client, to_record); !recorded) {
      for (const Delivery* d : to_record) finished.insert_or_assign(d->index, NotRecorded(*d, recorded.error()));
    } else {
      for (const Delivery* d : to_record) CountDelivered(*d);
    }
  }
  std::vector<redis::HandleResult> results;  // one per message left kLater before, in order
  std::vector<size_t> still_later;
  for (size_t index : run.later) {
    auto done = finished.find(index);
    results.push_back(done == finished.end() ? redis::HandleResult::Later() : done->second);
    if (results.back().kind == redis::HandleResult::Kind::kLater) still_later.push_back(index);
  }
  run.later = std::move(still_later);
  return results;
}

}  // namespace katy::sender
