#include "common/redis/command_batch.h"

#include <gtest/gtest.h>

namespace katy::redis {
namespace {

using Commands = std::vector<std::vector<std::string>>;

Commands Batched(const Commands& added) {
  CommandBatch batch;
  for (const auto& command : added) batch.Add(command);
  return batch.commands();
}

TEST(CommandBatchTest, MembersOfOneSetAndIdsOfOneStreamGoInOneCommand) {
  EXPECT_EQ(Batched({{"SADD", "k:{s1}:sent@1", "a"},
                     {"SADD", "k:{s1}:sent@2", "b"},
                     {"SADD", "k:{s1}:sent@1", "c"},
                     {"XACK", "k:{s1}:out", "senders", "1-1"},
                     {"XACK", "k:{s2}:out", "senders", "1-2"},
                     {"XACK", "k:{s1}:out", "senders", "1-3"},
                     {"XACK", "k:{s1}:out", "others", "1-4"}}),
            (Commands{{"SADD", "k:{s1}:sent@1", "a", "c"},
                      {"SADD", "k:{s1}:sent@2", "b"},
                      {"XACK", "k:{s1}:out", "senders", "1-1", "1-3"},
                      {"XACK", "k:{s2}:out", "senders", "1-2"},
                      {"XACK", "k:{s1}:out", "others", "1-4"}}));
}

TEST(CommandBatchTest, DeletesMergeOnlyWithinOneHashTag) {
  EXPECT_EQ(Batched({{"DEL", "k:{s1}:a"},
                     {"DEL", "k:{s2}:b"},
                     {"DEL", "k:{s1}:c", "k:{s1}:d"},
                     {"DEL", "untagged:e"},
                     {"DEL", "untagged:f"},
                     {"DEL", "k:{s1}:g", "k:{s2}:h"}}),
            (Commands{{"DEL", "k:{s1}:a", "k:{s1}:c", "k:{s1}:d"},
                      {"DEL", "k:{s2}:b"},
                      {"DEL", "untagged:e"},
                      {"DEL", "untagged:f"},
                      {"DEL", "k:{s1}:g", "k:{s2}:h"}}));
}

TEST(CommandBatchTest, AnIdenticalExpiryIsSetOnceAndOtherCommandsStayAsTheyAre) {
  EXPECT_EQ(Batched({{"SADD", "set", "a"},
                     {"EXPIREAT", "set", "100"},
                     {"SET", "own", "x", "EX", "10"},
                     {"SADD", "set", "b"},
                     {"EXPIREAT", "set", "100"},
                     {"EXPIREAT", "set", "200"},
                     {"SET", "own", "x", "EX", "10"},
                     {"INCR", "n"},
                     {"INCR", "n"}}),
            (Commands{{"SADD", "set", "a", "b"},
                      {"EXPIREAT", "set", "100"},
                      {"SET", "own", "x", "EX", "10"},
                      {"EXPIREAT", "set", "200"},
                      {"SET", "own", "x", "EX", "10"},
                      {"INCR", "n"},
                      {"INCR", "n"}}));
}

// Commands added phase by phase (every mark, then every acknowledgement) keep that order: a
// merged command stands where the first of its kind was added.
TEST(CommandBatchTest, PhasesKeepTheirOrder) {
  CommandBatch batch;
  batch.Add(Commands{{"SADD", "s@1", "a"}, {"EXPIREAT", "s@1", "9"}});
  batch.Add(Commands{{"SADD", "s@2", "b"}, {"EXPIREAT", "s@2", "9"}});
  batch.Add(Commands{{"SADD", "s@1", "c"}, {"EXPIREAT", "s@1", "9"}});
  batch.Add({"XACK", "out", "g", "1-1"});
  batch.Add({"XACK", "out", "g", "1-2"});
  EXPECT_EQ(batch.commands(), (Commands{{"SADD", "s@1", "a", "c"},
                                        {"EXPIREAT", "s@1", "9"},
                                        {"SADD", "s@2", "b"},
                                        {"EXPIREAT", "s@2", "9"},
                                        {"XACK", "out", "g", "1-1", "1-2"}}));
}

}  // namespace
}  // namespace katy::redis
