#include "services/ingress/http_connection.h"

#include <sys/epoll.h>
#include <sys/socket.h>

#include <cerrno>

namespace katy::ingress {
namespace {

// What one client may take of a pass: kReadsPerPass reads of kReadChunk bytes.
constexpr size_t kReadChunk = 64 * 1024;
constexpr int kReadsPerPass = 4;

// One buffer per loop thread for recv: its bytes are appended to the connection's own.
thread_local char scratch[kReadChunk];

}  // namespace

HttpConnection::HttpConnection(int fd, ConnectionHost& host, const HttpLimits& limits,
                               const ConnectionTimeouts& timeouts, Clock::time_point now)
    : fd_(fd), host_(host), limits_(limits), timeouts_(timeouts), deadline_(now + timeouts.read) {}

void HttpConnection::OnReady(uint32_t events, Clock::time_point now) {
  if ((events & EPOLLERR) != 0) return Close();
  // Bytes and FIN often come in one edge; the FIN raises no further edge after the bytes are
  // read, so it is remembered here (whatever the state) for Read to reach the EOF.
  if ((events & EPOLLRDHUP) != 0) peer_shut_ = true;
  switch (state_) {
    case State::kWriting:
      if ((events & EPOLLOUT) != 0) Flush(now);
      return;
    case State::kAwaiting:
      // Input waits in the kernel until the answer is out (then Resume reads it). A hang-up
      // ends the connection; the request's events are stored anyway.
      if ((events & EPOLLHUP) != 0) Close();
      return;
    case State::kReading:
      if ((events & EPOLLOUT) != 0 && !out_.empty()) Flush(now);  // a 100 Continue
      if (!closed() && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) != 0) Read(now);
      return;
    case State::kLingering:
      if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) != 0) Read(now);
      return;
    case State::kClosed:
      return;
  }
}

// Reads until the socket is drained, a request is in hand, or this pass's share is used
// (then the connection is resumed next pass: with edge-triggered epoll nothing else would).
void HttpConnection::Read(Clock::time_point now) {
  for (int reads = 0; reads < kReadsPerPass; ++reads) {
    const ssize_t got = recv(fd_, scratch, sizeof scratch, 0);
    if (got < 0) {
      if (errno == EINTR) continue;
      if (errno != EAGAIN && errno != EWOULDBLOCK) Close();
      return;
    }
    // EOF: whatever was sent whole has been answered; a partial request is dropped.
    if (got == 0) return Close();
    if (state_ != State::kLingering) {  // a lingering connection's input is discarded
      const bool fresh_input = in_.empty();
      in_.append(scratch, static_cast<size_t>(got));
      Parse(fresh_input, now);
      if (state_ != State::kReading) return;  // Resume reads the rest
    }
    // A short read drained the socket: the next bytes will raise a new edge. Not so after
    // the client's FIN: the EOF behind these bytes must be read now or never.
    if (static_cast<size_t>(got) < sizeof scratch && !peer_shut_) return;
  }
  host_.ScheduleResume(shared_from_this());
}

// Back to reading after an answer: a request may already wait in in_, and more input in the
// kernel that raised its edge while the connection was not reading.
void HttpConnection::Resume(Clock::time_point now) {
  if (state_ == State::kLingering) return Read(now);
  if (state_ != State::kReading) return;
  if (!in_.empty()) Parse(false, now);
  if (state_ == State::kReading) Read(now);
}

// Takes the requests in in_ in hand, one at a time, as they are whole: the next one only once
// the last is answered (an answer given at once lets it go on), so pipelined requests are
// answered in order and in_ never holds more than one request's bytes beyond what is being
// answered. `fresh_input`: the buffer was empty before the bytes just read, so a request
// may start now.
void HttpConnection::Parse(bool fresh_input, Clock::time_point now) {
  while (state_ == State::kReading && !in_.empty()) {
    HttpParse parsed = ParseHttpRequest(in_, limits_);
    switch (parsed.status) {
      case HttpParse::Status::kIncomplete:
        // A request must arrive whole within the read timeout of its first byte.
        if (fresh_input) deadline_ = now + timeouts_.read;
        if (parsed.head_complete && parsed.request.expects_continue && !continue_sent_) OnHead(parsed, now);
        return;
      case HttpParse::Status::kError:
        return Refuse(host_.OnMalformed(parsed.error_status, parsed.error), now);
      case HttpParse::Status::kComplete:
        continue_sent_ = false;
        if (!parsed.request.keep_alive) closing_ = true;
        state_ = State::kAwaiting;
        host_.OnRequest(shared_from_this(), parsed.request);
        // The request's bytes are dropped only now: until here `parsed` pointed into them.
        in_.erase(0, parsed.consumed);
        fresh_input = true;  // what follows is the next request
        break;
    }
  }
}

// The client waits for 100 Continue before sending its body: only a request its host would
// take gets it; any other is answered now, and its body never read.
void HttpConnection::OnHead(const HttpParse& parsed, Clock::time_point now) {
  if (std::optional<HttpReply> refusal = host_.CheckHead(parsed.request)) return Refuse(*refusal, now);
  continue_sent_ = true;
  out_ += kHttpContinue;
  Flush(now);
}

// Answers a request that will not be read whole, then closes: the rest of its bytes cannot be
// told from a next request.
void HttpConnection::Refuse(const HttpReply& reply, Clock::time_point now) {
  closing_ = true;
  in_.clear();
  state_ = State::kAwaiting;
  Respond(reply, true, now);
}

void HttpConnection::Respond(const HttpReply& reply, bool close_after, Clock::time_point now) {
  if (state_ != State::kAwaiting) return;
  if (close_after) closing_ = true;
  AppendHttpResponse(out_, reply.status, reply.body, reply.retry_after_s, !closing_, reply.allow, reply.content_type);
  state_ = State::kWriting;
  Flush(now);
}

void HttpConnection::Flush(Clock::time_point now) {
  while (out_sent_ < out_.size()) {
    const ssize_t sent = send(fd_, out_.data() + out_sent_, out_.size() - out_sent_, MSG_NOSIGNAL);
    if (sent > 0) {
      out_sent_ += static_cast<size_t>(sent);
    } else if (sent < 0 && errno == EINTR) {
      continue;
    } else if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
      if (!write_blocked_) {
        // The client has the read timeout to take what it was sent (a client that sends
        // without ever reading would otherwise hold the connection forever).
        write_blocked_ = true;
        deadline_ = now + timeouts_.read;
      }
      return;  // the rest on the next EPOLLOUT edge
    } else {
      return Close();
    }
  }
  out_.clear();
  out_sent_ = 0;
  write_blocked_ = false;
  if (state_ != State::kWriting) return;  // a 100 Continue went out
  if (closing_) return Linger(now);
  state_ = State::kReading;
  deadline_ = now + (in_.empty() ? timeouts_.idle : timeouts_.read);
  host_.ScheduleResume(shared_from_this());
}

// Everything is answered on a connection that must close. Closing with unread input would
// make the kernel send a reset that can destroy the answer before the client reads it, so
// half-close and discard the rest for a while (as nginx's lingering close does).
void HttpConnection::Linger(Clock::time_point now) {
  state_ = State::kLingering;
  deadline_ = now + timeouts_.linger;
  shutdown(fd_, SHUT_WR);
  host_.ScheduleResume(shared_from_this());  // input that came while answering is discarded too
}

void HttpConnection::Expire() {
  if (state_ == State::kReading && !in_.empty()) {
    // A request started and never finished (a stalled or very slow client). Best effort: the
    // connection closes right after.
    const HttpReply reply = host_.OnReadTimeout();
    std::string answer;
    AppendHttpResponse(answer, reply.status, reply.body, 0, false);
    send(fd_, answer.data(), answer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
  }
  Close();
}

void HttpConnection::Close() {
  if (closed()) return;
  state_ = State::kClosed;
  host_.OnClosed(*this);
}

}  // namespace katy::ingress
