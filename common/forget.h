#pragma once

#include <string>

#include "common/redis/redis_client.h"
#include "common/result.h"
#include "common/shard.h"

namespace katy {

// What erasing one person took away (docs/privacy.md lists every place a person's data lives).
struct ForgetCounts {
  int conversations = 0;      // the conversation hash (state, variables, profile, windows)
  int reminders = 0;          // pending reminders in the shard's timers
  int ownership = 0;          // the shard's record that a person or another app has the thread
  int inbound_events = 0;     // entries of the shard's inbound stream, pending ones included
  int outbound_messages = 0;  // entries of the shard's outbound stream: never sent afterwards
  int dead_letters = 0;       // entries of the shard's dead-letter stream
  int outbound_records = 0;   // the outbound API's idempotency keys and delivered marks

  int Total() const {
    return conversations + reminders + ownership + inbound_events + outbound_messages + dead_letters + outbound_records;
  }
};

// Erases everything Katy holds about `user` on `page`: every key, member and stream entry that
// names them. Everything of one person lives on one shard, so the erase itself is one script,
// atomic with everything else on the shard: the streams are read first (their entries are
// protobuf, which a script cannot read), and the script erases only if no entry was added to
// them since; otherwise the new entries are read and it runs again. So an event of the person
// that arrives while this runs is either erased or handled after the erase, never half: a
// responder or sender holding an erased entry finds it gone from its group's pending list when
// it commits or before it sends (the responder's commit and the sender's checks are fenced on
// it), and does nothing more.
//
// `keep_entry` is an inbound entry left in place: the event whose rule asked for the erase,
// which its handler answers and acknowledges afterwards. A shard too busy to settle in a few
// rounds is an error (kUnavailable): nothing was erased, try again.
Result<ForgetCounts> ForgetPerson(redis::Client& client, const KeySpace& keys, const std::string& page,
                                  const std::string& user, const std::string& keep_entry = "");

// What scrubbing a deleted message took away.
struct ScrubCounts {
  int inbound_events = 0;     // the message and its edits, deleted from the inbound stream
  int outbound_messages = 0;  // replies to it not yet sent: dropped, never sent
  int dead_letters = 0;       // the message's dead letters rewritten without its text, replies' deleted
};

// Removes a message the person deleted (Meta's message_delete, Instagram's is_deleted) from
// what Katy still holds, by its mid: its inbound entries and edits, the replies to it not yet
// sent (acknowledged and deleted, as ForgetPerson does), and its dead letters, which stay
// (replayable, marked `scrubbed`) without its text, attachments and quick-reply payload. A
// reply already sent cannot be taken back (docs/privacy.md).
Result<ScrubCounts> ScrubMessage(redis::Client& client, const KeySpace& keys, const std::string& page,
                                 const std::string& user, const std::string& mid);

}  // namespace katy
