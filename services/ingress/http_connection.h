#pragma once

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "services/ingress/http1.h"
#include "services/ingress/webhook_service.h"

namespace katy::ingress {

class HttpConnection;
using ConnectionPtr = std::shared_ptr<HttpConnection>;

// How long a connection may take over each part of its life.
struct ConnectionTimeouts {
  // A new connection must send its first byte, a request must arrive whole from its first
  // byte, and an answer must be taken by the client, each within this; else 408 (when a
  // request was started) and the connection is closed.
  std::chrono::milliseconds read{5000};
  // A keep-alive connection with nothing to say between requests is closed after this
  // (nginx's default).
  std::chrono::milliseconds idle{75000};
  // After an answer that closes the connection, unread input is discarded for this long so
  // the answer is not destroyed by a reset.
  std::chrono::milliseconds linger{2000};
};

// What a connection needs from the event loop that owns it. Every call comes from the loop's
// thread.
class ConnectionHost {
 public:
  virtual ~ConnectionHost() = default;
  // A whole request is in hand and the connection now waits for its answer: call Respond(),
  // now or later. `request` points into the connection's buffer: valid during the call only.
  virtual void OnRequest(const ConnectionPtr& conn, const HttpRequest& request) = 0;
  // A request's head asks for 100 Continue: the answer to send instead when the request is
  // refused on its head alone (its body is then never read), or nullopt to let the body come.
  virtual std::optional<HttpReply> CheckHead(const HttpRequest& head) = 0;
  // The bytes at the front are no acceptable request (`status` 400, 411, 413, 417, 431, 505):
  // the answer to send before closing.
  virtual HttpReply OnMalformed(int status, std::string_view reason) = 0;
  // A request that started and did not arrive whole in time: the answer to send (408).
  virtual HttpReply OnReadTimeout() = 0;
  // Call Resume() on `conn` at the start of the next pass: with edge-triggered epoll, input
  // that is already waiting raises no new event.
  virtual void ScheduleResume(const ConnectionPtr& conn) = 0;
  // The connection is finished: unwatch and close its descriptor. Called once.
  virtual void OnClosed(HttpConnection& conn) = 0;
};

// One client connection of the webhook port, as a state machine:
//
//   kReading --whole request--> kAwaiting --Respond--> (kWriting while the client is slow)
//      ^                                                  |
//      +------------------ keep-alive --------------------+--- close --> kLingering --> closed
//
// It holds at most one request at a time: pipelined requests wait in its buffer (or the
// kernel's) and are read one after the other, so they are answered in order. It knows
// nothing of webhooks or Redis: what a request means is its host's. One thread.
class HttpConnection : public std::enable_shared_from_this<HttpConnection> {
 public:
  enum class State {
    kReading,    // waiting for (the rest of) a request
    kAwaiting,   // a request is in hand; its answer is not known yet
    kWriting,    // the client is slow to take its answer
    kLingering,  // answered and half-closed; input is discarded until EOF
    kClosed,
  };
  using Clock = std::chrono::steady_clock;

  // Takes ownership of the connected, non-blocking `fd`. The host, limits and timeouts must
  // outlive the connection.
  HttpConnection(int fd, ConnectionHost& host, const HttpLimits& limits, const ConnectionTimeouts& timeouts,
                 Clock::time_point now);
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // What epoll reported for the descriptor (registered edge-triggered for in, out, rdhup).
  void OnReady(uint32_t epoll_events, Clock::time_point now);
  // Carries on reading after ScheduleResume.
  void Resume(Clock::time_point now);
  // The answer to the request in hand (kAwaiting). `close_after` closes the connection once
  // it is written, whatever the request asked.
  void Respond(const HttpReply& reply, bool close_after, Clock::time_point now);
  // Past its deadline (and not awaiting an answer): a started request gets 408; the
  // connection is closed.
  void Expire();
  // Closes at once; an answer in flight is dropped.
  void Close();

  int fd() const { return fd_; }
  State state() const { return state_; }
  bool closed() const { return state_ == State::kClosed; }
  // When Expire is due. Not meaningful while kAwaiting: the store's timeout bounds that.
  Clock::time_point deadline() const { return deadline_; }

 private:
  void Read(Clock::time_point now);
  void Parse(bool fresh_input, Clock::time_point now);
  void OnHead(const HttpParse& parsed, Clock::time_point now);
  void Refuse(const HttpReply& reply, Clock::time_point now);
  void Flush(Clock::time_point now);
  void Linger(Clock::time_point now);

  int fd_;
  ConnectionHost& host_;
  const HttpLimits& limits_;
  const ConnectionTimeouts& timeouts_;
  State state_ = State::kReading;
  std::string in_;   // received, not yet parsed
  std::string out_;  // not yet written
  size_t out_sent_ = 0;
  bool continue_sent_ = false;  // 100 Continue already sent for the request at the front of in_
  bool closing_ = false;        // close once the answer in hand is written
  bool write_blocked_ = false;  // out_ waits for the client to read (deadline set then)
  bool peer_shut_ = false;      // the client sent its FIN: reads end in EOF, not EAGAIN
  Clock::time_point deadline_;
};

}  // namespace katy::ingress
