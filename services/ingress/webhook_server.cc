#include "services/ingress/webhook_server.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>
#include <deque>
#include <unordered_map>

#include "common/log.h"
#include "services/ingress/http1.h"

namespace katy::ingress {
namespace {

using Clock = std::chrono::steady_clock;

// How often a loop looks for connections past their deadline.
constexpr auto kSweepInterval = std::chrono::milliseconds(100);
// What one client may take of a pass: kReadsPerPass reads of kReadChunk bytes.
constexpr size_t kReadChunk = 64 * 1024;
constexpr int kReadsPerPass = 4;
// After answering a request it refuses (413 mid-body, say), a connection is half-closed and
// its remaining input discarded for this long, so the answer is not destroyed by a reset.
constexpr auto kLingerTime = std::chrono::seconds(2);

double SecondsBetween(Clock::time_point from, Clock::time_point to) {
  return std::chrono::duration<double>(to - from).count();
}

Result<int> Listen(const config::HostPort& address) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string host = address.host.empty() ? "0.0.0.0" : address.host;
  const std::string port = std::to_string(address.port);
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return Error{"io", "cannot resolve " + address.ToString() + ": " + gai_strerror(rc)};
  }
  std::string last_error = "no address";
  for (addrinfo* a = found; a != nullptr; a = a->ai_next) {
    const int fd = socket(a->ai_family, a->ai_socktype | SOCK_NONBLOCK | SOCK_CLOEXEC, a->ai_protocol);
    if (fd < 0) continue;
    const int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (bind(fd, a->ai_addr, a->ai_addrlen) == 0 && listen(fd, SOMAXCONN) == 0) {
      freeaddrinfo(found);
      return fd;
    }
    last_error = std::strerror(errno);
    close(fd);
  }
  freeaddrinfo(found);
  return Error{"io", "cannot serve HTTP on " + address.ToString() + ": " + last_error};
}

int BoundPort(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
}

struct BatchMetrics {
  metrics::Histogram* requests = nullptr;  // requests per Redis round trip
  metrics::Histogram* seconds = nullptr;   // one round trip
};

}  // namespace

// One event loop: its own epoll, its own connections, its own Redis connection. Used only by
// its thread.
class WebhookServer::Loop {
 public:
  Loop(const ServerOptions& options, const WebhookService& service, const StoreOptions& store,
       BatchMetrics metrics, int listen_fd, int wake_fd, const std::atomic<bool>& stopping)
      : options_(options), limits_{16 * 1024, options.max_body_bytes}, service_(service), store_(store),
        metrics_(metrics), listen_fd_(listen_fd), wake_fd_(wake_fd), stopping_(stopping) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
    AddListener();
    epoll_event wake{};
    wake.events = EPOLLIN;
    wake.data.ptr = &wake_tag_;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_fd_, &wake);
  }

  ~Loop() {
    for (auto& [fd, conn] : connections_) close(fd);
    close(epoll_);
  }

  void Run() {
    Clock::time_point next_sweep = Clock::now() + kSweepInterval;
    while (!stopping_.load(std::memory_order_relaxed)) {
      Pass(resume_.empty() ? static_cast<int>(kSweepInterval.count()) : 0);
      if (now_ >= next_sweep) {
        Sweep();
        next_sweep = now_ + kSweepInterval;
      }
    }
    // Stopping: accept and read nothing more, but finish the batches in flight (they end,
    // stored or failed, within the store's timeout) so every request read gets its answer.
    epoll_ctl(epoll_, EPOLL_CTL_DEL, listen_fd_, nullptr);
    epoll_ctl(epoll_, EPOLL_CTL_DEL, wake_fd_, nullptr);
    draining_ = true;
    std::vector<ConnectionPtr> idle;
    for (auto& [fd, conn] : connections_) {
      if (conn->state != State::kAwaiting && conn->state != State::kWriting) idle.push_back(conn);
    }
    for (const ConnectionPtr& conn : idle) Kill(*conn);
    graveyard_.clear();
    while (!batches_.empty()) {
      Pass(static_cast<int>(kSweepInterval.count()));
      store_.connection().CheckTimeouts(now_);
      AnswerCompletedBatches();
      SyncStoreWatch();
    }
  }

 private:
  enum class State {
    kReading,    // waiting for (the rest of) a request
    kAwaiting,   // a request is in hand; its answer waits for its batch
    kWriting,    // the client is slow to take its answer
    kLingering,  // answered and half-closed; input is discarded until EOF
  };

  struct Connection {
    int fd = -1;
    State state = State::kReading;
    std::string in;             // received, not yet parsed
    std::string out;            // not yet written
    size_t out_sent = 0;
    bool continue_sent = false; // 100 Continue already sent for the request at the front of `in`
    bool closing = false;       // close once the answer in hand is written
    bool dead = false;          // closed; freed when no answer refers to it any more
    bool write_blocked = false; // `out` is waiting for the client to read (deadline set then)
    bool peer_shut = false;     // the client has sent its FIN: reads end in EOF, not EAGAIN
    Clock::time_point deadline;
  };
  using ConnectionPtr = std::shared_ptr<Connection>;

  struct Answer {
    ConnectionPtr conn;
    HttpReply reply;
    std::vector<katy::v1::InboundEvent> events;  // to store before answering
    bool store = false;
  };

  // The requests of one pass. Batches are answered strictly in order.
  struct Batch {
    std::vector<Answer> answers;
    std::vector<katy::v1::InboundEvent> events;  // of the answers that store, in order
    size_t storing_requests = 0;
    Clock::time_point read_at;
    Clock::time_point sent_at;
    bool done = false;
    Result<std::vector<bool>> stored = std::vector<bool>{};
  };

  // One turn of the loop: wait, do every I/O epoll reports, send this pass's batch.
  void Pass(int timeout_ms) {
    epoll_event events[256];
    const int n = epoll_wait(epoll_, events, 256, timeout_ms);
    if (n < 0 && errno != EINTR) log::Error("epoll_wait failed", {{"error", std::strerror(errno)}});
    now_ = Clock::now();
    for (ConnectionPtr& conn : std::exchange(resume_, {})) {
      if (!conn->dead) Resume(conn);
    }
    for (int i = 0; i < n; ++i) {
      void* tag = events[i].data.ptr;
      if (tag == &listen_tag_) {
        AcceptAll();
      } else if (tag == &store_tag_) {
        store_.connection().OnEvents(events[i].events);
      } else if (tag != &wake_tag_) {
        // Connections killed in this pass are still in the graveyard, so `tag` is valid.
        auto* conn = static_cast<Connection*>(tag);
        if (conn->dead) continue;
        OnReady(connections_.at(conn->fd), events[i].events);
      }
    }
    SendBatch();
    AnswerCompletedBatches();
    store_.connection().Flush();
    SyncStoreWatch();
    graveyard_.clear();
  }

  void AddListener() {
    epoll_event listen{};
    // EPOLLEXCLUSIVE: a new connection wakes one loop, not all of them.
    listen.events = EPOLLIN | EPOLLEXCLUSIVE;
    listen.data.ptr = &listen_tag_;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, listen_fd_, &listen);
  }

  // The Redis socket changes with each reconnection, and wants EPOLLOUT only while it has
  // output queued.
  void SyncStoreWatch() {
    auto& redis = store_.connection();
    const uint32_t want = EPOLLIN | (redis.wants_write() ? EPOLLOUT : 0u);
    if (redis.fd() < 0) {
      store_watched_ = false;
      return;
    }
    epoll_event ev{};
    ev.events = want;
    ev.data.ptr = &store_tag_;
    if (!store_watched_ || store_generation_ != redis.generation()) {
      // A closed socket left the epoll set by itself.
      epoll_ctl(epoll_, EPOLL_CTL_ADD, redis.fd(), &ev);
      store_watched_ = true;
      store_generation_ = redis.generation();
      store_events_ = want;
    } else if (want != store_events_) {
      epoll_ctl(epoll_, EPOLL_CTL_MOD, redis.fd(), &ev);
      store_events_ = want;
    }
  }

  void AcceptAll() {
    while (true) {
      const int fd = accept4(listen_fd_, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          // Out of descriptors: the listener would wake this loop in a spin. Stop listening
          // until the next sweep; pending connections wait in the backlog.
          accept_log_.Write(log::Level::kError, "cannot accept connections",
                            {{"error", std::strerror(errno)}});
          epoll_ctl(epoll_, EPOLL_CTL_DEL, listen_fd_, nullptr);
          accept_paused_ = true;
        }
        return;  // EAGAIN: another loop took it, or the backlog is empty
      }
      const int one = 1;
      // Answers are small and written whole: send them now, not after a delayed ACK.
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto conn = std::make_shared<Connection>();
      conn->fd = fd;
      conn->deadline = now_ + options_.idle_timeout;
      // Edge-triggered, registered once: a connection's state decides what to do with an
      // edge, so no request costs an epoll_ctl. Whatever an edge announces must be consumed
      // (or the connection put on resume_), since it will not be announced again.
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET;
      ev.data.ptr = conn.get();
      if (epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        continue;
      }
      connections_.emplace(fd, std::move(conn));
    }
  }

  void OnReady(const ConnectionPtr& conn, uint32_t events) {
    if ((events & EPOLLERR) != 0) return Kill(*conn);
    // Bytes and FIN often come in one edge; the FIN raises no further edge after the bytes are
    // read, so it is remembered here (whatever the state) for Read to reach the EOF.
    if ((events & EPOLLRDHUP) != 0) conn->peer_shut = true;
    switch (conn->state) {
      case State::kWriting:
        if ((events & EPOLLOUT) != 0) Flush(conn);
        return;
      case State::kAwaiting:
        // Input waits in the kernel until the answer is out (then Resume reads it). A hang-up
        // ends the connection; the request's events are stored anyway.
        if ((events & EPOLLHUP) != 0) Kill(*conn);
        return;
      case State::kReading:
        if ((events & EPOLLOUT) != 0 && !conn->out.empty()) Flush(conn);  // a 100 Continue
        if (!conn->dead && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) != 0) Read(conn);
        return;
      case State::kLingering:
        if ((events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) != 0) Read(conn);
        return;
    }
  }

  // Reads until the socket is drained, a request is in hand, or this pass's share is used
  // (then the connection is resumed next pass: with edge-triggered epoll nothing else would).
  void Read(const ConnectionPtr& conn) {
    for (int reads = 0; reads < kReadsPerPass; ++reads) {
      const ssize_t got = recv(conn->fd, scratch_, sizeof scratch_, 0);
      if (got < 0) {
        if (errno == EINTR) continue;
        if (errno != EAGAIN && errno != EWOULDBLOCK) Kill(*conn);
        return;
      }
      // EOF: whatever was sent whole has been answered; a partial request is dropped.
      if (got == 0) return Kill(*conn);
      if (conn->state != State::kLingering) {  // a lingering connection's input is discarded
        const bool fresh_input = conn->in.empty();
        conn->in.append(scratch_, static_cast<size_t>(got));
        ParseRequest(conn, fresh_input);
        if (conn->dead || conn->state != State::kReading) return;  // Resume reads the rest
      }
      // A short read drained the socket: the next bytes will raise a new edge. Not so after
      // the client's FIN: the EOF behind these bytes must be read now or never.
      if (static_cast<size_t>(got) < sizeof scratch_ && !conn->peer_shut) return;
    }
    resume_.push_back(conn);
  }

  // Back to reading after an answer: a request may already wait in `in`, and more input in
  // the kernel that raised its edge while the connection was not reading.
  void Resume(const ConnectionPtr& conn) {
    if (conn->state == State::kLingering) return Read(conn);
    if (conn->state != State::kReading) return;
    if (!conn->in.empty()) ParseRequest(conn, false);
    if (!conn->dead && conn->state == State::kReading) Read(conn);
  }

  // Takes the request at the front of `conn->in` in hand when it is whole. `fresh_input`:
  // the buffer was empty before the bytes just read, so a request may start now.
  void ParseRequest(const ConnectionPtr& conn, bool fresh_input) {
    HttpParse parsed = ParseHttpRequest(conn->in, limits_);
    switch (parsed.status) {
      case HttpParse::Status::kIncomplete:
        // A request must arrive whole within the read timeout of its first byte; between
        // requests, the idle timeout applies.
        if (fresh_input) conn->deadline = now_ + (conn->in.empty() ? options_.idle_timeout : options_.read_timeout);
        if (parsed.head_complete && parsed.request.expects_continue && !conn->continue_sent) {
          conn->continue_sent = true;
          conn->out += kHttpContinue;
          Flush(conn);
        }
        return;
      case HttpParse::Status::kError: {
        const std::string reason = parsed.error_status == 413 ? "too_large" : "bad_http";
        conn->closing = true;
        conn->in.clear();
        Take(conn, {conn, service_.Reject(parsed.error_status, reason, std::string(parsed.error)), {}, false});
        return;
      }
      case HttpParse::Status::kComplete:
        conn->continue_sent = false;
        if (!parsed.request.keep_alive) conn->closing = true;
        Take(conn, Handle(conn, parsed.request));
        // The request's bytes are dropped only now: until here `parsed` pointed into them.
        conn->in.erase(0, parsed.consumed);
        return;
    }
  }

  Answer Handle(const ConnectionPtr& conn, const HttpRequest& request) {
    if (request.path != "/webhook") return {conn, {404, "not found\n", 0}, {}, false};
    if (request.method == "GET") {
      return {conn,
              service_.HandleGet(QueryParam(request.query, "hub.mode").value_or(""),
                                 QueryParam(request.query, "hub.verify_token").value_or(""),
                                 QueryParam(request.query, "hub.challenge").value_or("")),
              {}, false};
    }
    if (request.method != "POST") return {conn, {405, "GET or POST only\n", 0}, {}, false};
    auto checked = service_.CheckPost(request.body, request.Header("X-Hub-Signature-256"),
                                      request.Header("X-Hub-Signature"));
    if (auto* events = std::get_if<std::vector<katy::v1::InboundEvent>>(&checked)) {
      return {conn, {}, std::move(*events), true};
    }
    return {conn, std::get<HttpReply>(std::move(checked)), {}, false};
  }

  // The connection reads nothing more until this answer is written.
  void Take(const ConnectionPtr& conn, Answer answer) {
    conn->state = State::kAwaiting;
    if (!pass_) {
      pass_ = std::make_unique<Batch>();
      pass_->read_at = now_;
    }
    if (answer.store) {
      ++pass_->storing_requests;
      for (auto& event : answer.events) pass_->events.push_back(std::move(event));
    }
    pass_->answers.push_back(std::move(answer));
  }

  // This pass's requests become one batch: one pipelined write of their events.
  void SendBatch() {
    if (!pass_) return;
    Batch* batch = pass_.get();
    batches_.push_back(std::move(pass_));
    batch->sent_at = Clock::now();
    if (batch->events.empty()) {
      batch->done = true;
      return;
    }
    store_.Store(batch->events, [this, batch](Result<std::vector<bool>> stored) {
      batch->stored = std::move(stored);
      batch->done = true;
      if (metrics_.seconds != nullptr) {
        metrics_.seconds->Observe(SecondsBetween(batch->sent_at, Clock::now()));
        metrics_.requests->Observe(static_cast<double>(batch->storing_requests));
      }
    });
  }

  // Answers finished batches, oldest first, stopping at the first one still in flight.
  void AnswerCompletedBatches() {
    while (!batches_.empty() && batches_.front()->done) {
      std::unique_ptr<Batch> batch = std::move(batches_.front());
      batches_.pop_front();
      const auto finished = Clock::now();
      size_t offset = 0;
      for (auto& answer : batch->answers) {
        if (answer.store) {
          const size_t n = answer.events.size();
          for (size_t i = 0; i < n; ++i) answer.events[i] = std::move(batch->events[offset + i]);
          if (batch->stored) {
            std::vector<bool> mine(batch->stored->begin() + static_cast<long>(offset),
                                   batch->stored->begin() + static_cast<long>(offset + n));
            answer.reply = service_.FinishPost(answer.events, mine);
          } else {
            answer.reply = service_.FinishPost(answer.events, batch->stored.error());
          }
          offset += n;
        }
        service_.RecordRequest(answer.reply.status, SecondsBetween(batch->read_at, finished));
        const ConnectionPtr& conn = answer.conn;
        if (conn->dead) continue;  // the client left; its events are stored all the same
        AppendHttpResponse(conn->out, answer.reply.status, answer.reply.body, answer.reply.retry_after_s,
                           !conn->closing && !draining_);
        if (draining_) conn->closing = true;
        conn->state = State::kWriting;
        Flush(conn);
      }
    }
  }

  void Flush(const ConnectionPtr& conn) {
    while (conn->out_sent < conn->out.size()) {
      const ssize_t sent = send(conn->fd, conn->out.data() + conn->out_sent, conn->out.size() - conn->out_sent,
                                MSG_NOSIGNAL);
      if (sent > 0) {
        conn->out_sent += static_cast<size_t>(sent);
      } else if (sent < 0 && errno == EINTR) {
        continue;
      } else if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!conn->write_blocked) {
          // The client has the read timeout to take what it was sent (a client that sends
          // without ever reading would otherwise hold the connection forever).
          conn->write_blocked = true;
          conn->deadline = now_ + options_.read_timeout;
        }
        return;  // the rest on the next EPOLLOUT edge
      } else {
        return Kill(*conn);
      }
    }
    conn->out.clear();
    conn->out_sent = 0;
    conn->write_blocked = false;
    if (conn->state != State::kWriting) return;  // a 100 Continue went out
    if (conn->closing || draining_) return Linger(conn);  // stopping: no next request
    conn->state = State::kReading;
    conn->deadline = now_ + (conn->in.empty() ? options_.idle_timeout : options_.read_timeout);
    resume_.push_back(conn);
  }

  // Everything is answered on a connection that must close. Closing with unread input would
  // make the kernel send a reset that can destroy the answer before the client reads it, so
  // half-close and discard the rest for a while (as nginx's lingering close does).
  void Linger(const ConnectionPtr& conn) {
    conn->state = State::kLingering;
    conn->deadline = now_ + kLingerTime;
    shutdown(conn->fd, SHUT_WR);
    resume_.push_back(conn);  // input that came while answering is discarded too
  }

  void Kill(Connection& conn) {
    if (conn.dead) return;
    conn.dead = true;
    epoll_ctl(epoll_, EPOLL_CTL_DEL, conn.fd, nullptr);
    close(conn.fd);
    // Events of this pass and answers in flight may still point at it: it is freed when
    // both are done with it.
    auto it = connections_.find(conn.fd);
    graveyard_.push_back(std::move(it->second));
    connections_.erase(it);
  }

  void Sweep() {
    if (accept_paused_) {
      accept_paused_ = false;
      AddListener();
    }
    store_.connection().CheckTimeouts(now_);
    AnswerCompletedBatches();
    store_.connection().Flush();
    SyncStoreWatch();
    std::vector<ConnectionPtr> expired;
    for (auto& [fd, conn] : connections_) {
      if (conn->state != State::kAwaiting && now_ >= conn->deadline) expired.push_back(conn);
    }
    for (const ConnectionPtr& conn : expired) {
      if (conn->state == State::kReading && !conn->in.empty()) {
        // A request started and never finished (a stalled or very slow client).
        HttpReply reply = service_.Reject(408, "read_timeout", "request not received in time");
        service_.RecordRequest(408, 0);
        std::string answer;
        AppendHttpResponse(answer, reply.status, reply.body, 0, false);
        send(conn->fd, answer.data(), answer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      }
      Kill(*conn);
    }
  }

  const ServerOptions& options_;
  const HttpLimits limits_;
  const WebhookService& service_;
  RedisEventStore store_;
  BatchMetrics metrics_;
  const int listen_fd_;
  const int wake_fd_;
  const std::atomic<bool>& stopping_;
  int epoll_ = -1;
  char listen_tag_ = 0;  // epoll tags: addresses told apart from connections
  char wake_tag_ = 0;
  char store_tag_ = 0;
  bool store_watched_ = false;
  uint64_t store_generation_ = 0;
  uint32_t store_events_ = 0;
  bool accept_paused_ = false;
  bool draining_ = false;
  Clock::time_point now_;
  std::unordered_map<int, ConnectionPtr> connections_;
  std::vector<ConnectionPtr> resume_;           // to read (on) at the start of the next pass
  std::vector<ConnectionPtr> graveyard_;        // killed in this pass
  std::unique_ptr<Batch> pass_;                 // requests read in this pass
  std::deque<std::unique_ptr<Batch>> batches_;  // sent, oldest first
  log::RateLimited accept_log_{std::chrono::seconds(1)};
  char scratch_[kReadChunk];
};

Result<std::unique_ptr<WebhookServer>> WebhookServer::Start(const ServerOptions& options,
                                                            const WebhookService& service,
                                                            const StoreOptions& store,
                                                            metrics::Registry* metrics) {
  auto listen_fd = Listen(options.address);
  if (!listen_fd) return listen_fd.error();
  std::unique_ptr<WebhookServer> server(new WebhookServer());
  server->listen_fd_ = *listen_fd;
  server->port_ = BoundPort(*listen_fd);
  server->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (server->wake_fd_ < 0) return Error{"io", std::string("eventfd: ") + std::strerror(errno)};

  BatchMetrics batch_metrics;
  if (metrics != nullptr) {
    batch_metrics.requests = &metrics->AddHistogram("katy_ingress_batch_requests",
                                                    "Webhook requests stored per Redis round trip",
                                                    {1, 2, 4, 8, 16, 32, 64, 128, 256})
                                  .WithLabels({});
    batch_metrics.seconds = &metrics->AddHistogram("katy_ingress_store_seconds",
                                                   "Time of one Redis round trip storing a batch",
                                                   metrics::LatencyBuckets())
                                 .WithLabels({});
  }
  // The options are copied into the server so the loops can keep a reference.
  server->options_ = options;
  try {
    for (int i = 0; i < std::max(options.threads, 1); ++i) {
      server->loops_.push_back(std::make_unique<Loop>(server->options_, service, store, batch_metrics,
                                                      server->listen_fd_, server->wake_fd_, server->stopping_));
    }
  } catch (const std::exception& e) {
    return Error{"io", e.what()};
  }
  for (auto& loop : server->loops_) server->threads_.emplace_back([raw = loop.get()] { raw->Run(); });
  return server;
}

WebhookServer::~WebhookServer() { Shutdown(); }

void WebhookServer::Shutdown() {
  if (stopping_.exchange(true)) return;
  const uint64_t one = 1;
  // The eventfd stays readable, so every loop wakes (and wakes again) until it has stopped.
  if (write(wake_fd_, &one, sizeof one) < 0) log::Error("cannot wake the HTTP loops", {{"error", std::strerror(errno)}});
  for (auto& thread : threads_) thread.join();
  loops_.clear();  // closes every connection
  close(listen_fd_);
  close(wake_fd_);
}

}  // namespace katy::ingress
