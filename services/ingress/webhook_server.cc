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
#include <unordered_map>

#include "common/log.h"
#include "services/ingress/http1.h"

namespace katy::ingress {
namespace {

using Clock = std::chrono::steady_clock;

// How often a loop looks for connections past their deadline.
constexpr auto kSweepInterval = std::chrono::milliseconds(100);
// Bytes read from a connection per readiness: bounds what one client takes of a pass.
constexpr size_t kReadChunk = 64 * 1024;
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

// One event loop: its own epoll, its own connections, one sink call at a time. Used only by
// its thread.
class WebhookServer::Loop {
 public:
  Loop(const ServerOptions& options, const WebhookService& service, EventSink& sink,
       BatchMetrics metrics, int listen_fd, int wake_fd, const std::atomic<bool>& stopping)
      : options_(options), limits_{16 * 1024, options.max_body_bytes}, service_(service),
        sink_(sink), metrics_(metrics), listen_fd_(listen_fd), stopping_(stopping) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
    // EPOLLEXCLUSIVE: a new connection wakes one loop, not all of them.
    AddListener();
    epoll_event wake{};
    wake.events = EPOLLIN;
    wake.data.ptr = &wake_tag_;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, wake_fd, &wake);
  }

  ~Loop() {
    for (auto& [fd, conn] : connections_) close(fd);
    close(epoll_);
  }

  void Run() {
    std::vector<epoll_event> events(256);
    Clock::time_point next_sweep = Clock::now() + kSweepInterval;
    while (!stopping_.load(std::memory_order_relaxed)) {
      const int timeout_ms = parse_later_.empty() ? static_cast<int>(kSweepInterval.count()) : 0;
      const int n = epoll_wait(epoll_, events.data(), static_cast<int>(events.size()), timeout_ms);
      if (n < 0 && errno != EINTR) {
        log::Error("epoll_wait failed", {{"error", std::strerror(errno)}});
        return;
      }
      now_ = Clock::now();
      for (Connection* conn : std::exchange(parse_later_, {})) {
        if (!conn->dead) ParseRequests(*conn);
      }
      for (int i = 0; i < n; ++i) {
        void* tag = events[i].data.ptr;
        if (tag == &listen_tag_) {
          AcceptAll();
        } else if (tag != &wake_tag_) {
          OnReady(*static_cast<Connection*>(tag), events[i].events);
        }
      }
      StoreAndAnswer();
      if (now_ >= next_sweep) {
        Sweep();
        next_sweep = now_ + kSweepInterval;
      }
      graveyard_.clear();
    }
  }

 private:
  struct Connection {
    int fd = -1;
    std::string in;             // received, not yet parsed
    std::string out;            // answers not yet written
    size_t out_sent = 0;
    bool continue_sent = false; // 100 Continue already sent for the request at the front of `in`
    bool closing = false;       // answer what was read, then close; parse nothing more
    bool lingering = false;     // answered and half-closed; input is discarded until EOF
    bool writing = false;       // waiting for EPOLLOUT: the client is slow to take its answers
    bool dead = false;          // closed; freed at the end of the pass
    bool touched = false;       // has new answers this pass
    Clock::time_point deadline;
  };

  // One request's answer, in the order requests were read. `store`: the answer depends on
  // storing `events` first.
  struct Answer {
    Connection* conn;
    HttpReply reply;
    bool store = false;
    bool interim_continue = false;  // "100 Continue": not a reply, counts nothing
    std::vector<katy::v1::InboundEvent> events;
  };

  void AddListener() {
    epoll_event listen{};
    listen.events = EPOLLIN | EPOLLEXCLUSIVE;
    listen.data.ptr = &listen_tag_;
    epoll_ctl(epoll_, EPOLL_CTL_ADD, listen_fd_, &listen);
  }

  void Watch(Connection& conn, uint32_t events) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = &conn;
    epoll_ctl(epoll_, EPOLL_CTL_MOD, conn.fd, &ev);
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
      auto conn = std::make_unique<Connection>();
      conn->fd = fd;
      conn->deadline = now_ + options_.idle_timeout;
      epoll_event ev{};
      ev.events = EPOLLIN | EPOLLRDHUP;
      ev.data.ptr = conn.get();
      if (epoll_ctl(epoll_, EPOLL_CTL_ADD, fd, &ev) != 0) {
        close(fd);
        continue;
      }
      connections_.emplace(fd, std::move(conn));
    }
  }

  void OnReady(Connection& conn, uint32_t events) {
    if (conn.dead) return;
    if ((events & EPOLLERR) != 0) return Kill(conn);
    if ((events & EPOLLOUT) != 0) Flush(conn);
    if (!conn.dead && (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP)) != 0) Read(conn);
  }

  void Read(Connection& conn) {
    if (conn.writing) return;  // the client is not taking its answers: read nothing more
    ssize_t got;
    do {
      got = recv(conn.fd, scratch_, sizeof scratch_, 0);
    } while (got < 0 && errno == EINTR);
    if (got < 0) {
      if (errno != EAGAIN && errno != EWOULDBLOCK) Kill(conn);
      return;
    }
    if (got == 0) {  // the client closed its side: answer what it sent, then close
      if (conn.lingering) return Kill(conn);
      conn.closing = true;
      ParseRequests(conn);
      if (!conn.touched && conn.out.empty()) Kill(conn);
      return;
    }
    if (conn.lingering || conn.closing) return;  // discarded
    const bool fresh_input = conn.in.empty();
    conn.in.append(scratch_, static_cast<size_t>(got));
    ParseRequests(conn, fresh_input);
  }

  // Turns every whole request in `conn.in` into an Answer (the body must be checked before the
  // buffer moves on, so checks happen here; storage waits for the end of the pass).
  // `fresh_input`: `conn.in` was empty before the bytes just read (a request may start now).
  void ParseRequests(Connection& conn, bool fresh_input = false) {
    size_t offset = 0;
    while (!conn.lingering && offset < conn.in.size()) {
      HttpParse parsed = ParseHttpRequest(std::string_view(conn.in).substr(offset), limits_);
      if (parsed.status == HttpParse::Status::kIncomplete) {
        if (parsed.head_complete && parsed.request.expects_continue && !conn.continue_sent) {
          conn.continue_sent = true;
          AddAnswer({&conn, {}, false, true, {}});
        }
        break;
      }
      if (parsed.status == HttpParse::Status::kError) {
        const std::string reason = parsed.error_status == 413 ? "too_large" : "bad_http";
        AddAnswer({&conn, service_.Reject(parsed.error_status, reason, std::string(parsed.error)), false, false, {}});
        conn.closing = true;
        offset = conn.in.size();
        break;
      }
      offset += parsed.consumed;
      conn.continue_sent = false;
      AddAnswer(Handle(conn, parsed.request));
      if (!parsed.request.keep_alive) {
        conn.closing = true;
        offset = conn.in.size();
        break;
      }
    }
    conn.in.erase(0, offset);
    if (conn.closing) conn.in.clear();
    // A request must arrive whole within the read timeout of its first byte; between
    // requests, the idle timeout applies.
    if (conn.in.empty()) {
      conn.deadline = now_ + options_.idle_timeout;
    } else if (offset > 0 || fresh_input) {
      conn.deadline = now_ + options_.read_timeout;
    }
  }

  Answer Handle(Connection& conn, const HttpRequest& request) {
    if (request.path != "/webhook") return {&conn, {404, "not found\n", 0}, false, false, {}};
    if (request.method == "GET") {
      return {&conn,
              service_.HandleGet(QueryParam(request.query, "hub.mode").value_or(""),
                                 QueryParam(request.query, "hub.verify_token").value_or(""),
                                 QueryParam(request.query, "hub.challenge").value_or("")),
              false, false, {}};
    }
    if (request.method != "POST") return {&conn, {405, "GET or POST only\n", 0}, false, false, {}};
    auto checked = service_.CheckPost(request.body, request.Header("X-Hub-Signature-256"),
                                      request.Header("X-Hub-Signature"));
    if (auto* events = std::get_if<std::vector<katy::v1::InboundEvent>>(&checked)) {
      return {&conn, {}, true, false, std::move(*events)};
    }
    return {&conn, std::get<HttpReply>(std::move(checked)), false, false, {}};
  }

  void AddAnswer(Answer answer) {
    answer.conn->touched = true;
    answers_.push_back(std::move(answer));
  }

  // The pass's one Redis round trip, then every answer in request order.
  void StoreAndAnswer() {
    if (answers_.empty()) return;
    batch_.clear();
    size_t stored_requests = 0;
    for (auto& answer : answers_) {
      if (!answer.store) continue;
      ++stored_requests;
      for (auto& event : answer.events) batch_.push_back(std::move(event));
    }
    Result<std::vector<bool>> stored = std::vector<bool>{};
    if (!batch_.empty()) {
      const auto started = Clock::now();
      stored = sink_.Enqueue(batch_);
      if (metrics_.seconds != nullptr) {
        metrics_.seconds->Observe(SecondsBetween(started, Clock::now()));
        metrics_.requests->Observe(static_cast<double>(stored_requests));
      }
    }
    const auto finished = Clock::now();
    size_t offset = 0;
    for (auto& answer : answers_) {
      Connection& conn = *answer.conn;
      if (answer.interim_continue) {
        if (!conn.dead) conn.out += kHttpContinue;
        continue;
      }
      if (answer.store) {
        const size_t n = answer.events.size();
        for (size_t i = 0; i < n; ++i) answer.events[i] = std::move(batch_[offset + i]);
        if (stored) {
          std::vector<bool> mine(stored->begin() + static_cast<long>(offset),
                                 stored->begin() + static_cast<long>(offset + n));
          answer.reply = service_.FinishPost(answer.events, mine);
        } else {
          answer.reply = service_.FinishPost(answer.events, stored.error());
        }
        offset += n;
      }
      service_.RecordRequest(answer.reply.status, SecondsBetween(now_, finished));
      if (conn.dead) continue;  // the client left; its events are stored all the same
      // Only the last answer of a closing connection says so.
      AppendHttpResponse(conn.out, answer.reply.status, answer.reply.body, answer.reply.retry_after_s,
                         !conn.closing);
    }
    for (auto& answer : answers_) {
      Connection& conn = *answer.conn;
      if (!conn.touched) continue;
      conn.touched = false;
      if (!conn.dead) Flush(conn);
    }
    answers_.clear();
  }

  void Flush(Connection& conn) {
    while (conn.out_sent < conn.out.size()) {
      const ssize_t sent = send(conn.fd, conn.out.data() + conn.out_sent, conn.out.size() - conn.out_sent,
                                MSG_NOSIGNAL);
      if (sent > 0) {
        conn.out_sent += static_cast<size_t>(sent);
      } else if (sent < 0 && errno == EINTR) {
        continue;
      } else if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
        if (!conn.writing) {
          // Stop reading until the client takes what it was sent (bounded memory), and give
          // it the read timeout to do so.
          conn.writing = true;
          conn.deadline = now_ + options_.read_timeout;
          Watch(conn, EPOLLOUT);
        }
        return;
      } else {
        return Kill(conn);
      }
    }
    conn.out.clear();
    conn.out_sent = 0;
    if (conn.closing) return Linger(conn);
    if (conn.writing) {
      conn.writing = false;
      conn.deadline = now_ + (conn.in.empty() ? options_.idle_timeout : options_.read_timeout);
      Watch(conn, EPOLLIN | EPOLLRDHUP);
      if (!conn.in.empty()) parse_later_.push_back(&conn);  // read while we could not answer
    }
  }

  // Everything is answered on a connection that must close. Closing with unread input would
  // make the kernel send a reset that can destroy the answer before the client reads it, so
  // half-close and discard the rest for a while (as nginx's lingering close does).
  void Linger(Connection& conn) {
    conn.lingering = true;
    conn.deadline = now_ + kLingerTime;
    shutdown(conn.fd, SHUT_WR);
    Watch(conn, EPOLLIN | EPOLLRDHUP);
  }

  void Kill(Connection& conn) {
    if (conn.dead) return;
    conn.dead = true;
    std::erase(parse_later_, &conn);
    epoll_ctl(epoll_, EPOLL_CTL_DEL, conn.fd, nullptr);
    close(conn.fd);
    // Answers of this pass may still point at it: it is freed at the end of the pass.
    auto it = connections_.find(conn.fd);
    graveyard_.push_back(std::move(it->second));
    connections_.erase(it);
  }

  void Sweep() {
    if (accept_paused_) {
      accept_paused_ = false;
      AddListener();
    }
    std::vector<Connection*> expired;
    for (auto& [fd, conn] : connections_) {
      if (now_ >= conn->deadline) expired.push_back(conn.get());
    }
    for (Connection* conn : expired) {
      if (!conn->in.empty() && !conn->lingering && !conn->closing && !conn->writing) {
        // A request started and never finished (a stalled or very slow client).
        HttpReply reply = service_.Reject(408, "read_timeout", "request not received in time");
        service_.RecordRequest(408, 0);
        AppendHttpResponse(conn->out, reply.status, reply.body, 0, false);
        send(conn->fd, conn->out.data(), conn->out.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
      }
      Kill(*conn);
    }
  }

  const ServerOptions& options_;
  const HttpLimits limits_;
  const WebhookService& service_;
  EventSink& sink_;
  BatchMetrics metrics_;
  const int listen_fd_;
  const std::atomic<bool>& stopping_;
  int epoll_ = -1;
  char listen_tag_ = 0;  // epoll tags: addresses told apart from connections
  char wake_tag_ = 0;
  bool accept_paused_ = false;
  Clock::time_point now_;
  std::unordered_map<int, std::unique_ptr<Connection>> connections_;
  std::vector<std::unique_ptr<Connection>> graveyard_;
  std::vector<Connection*> parse_later_;
  std::vector<Answer> answers_;
  std::vector<katy::v1::InboundEvent> batch_;
  log::RateLimited accept_log_{std::chrono::seconds(1)};
  char scratch_[kReadChunk];
};

Result<std::unique_ptr<WebhookServer>> WebhookServer::Start(const ServerOptions& options,
                                                            const WebhookService& service, EventSink& sink,
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
      server->loops_.push_back(std::make_unique<Loop>(server->options_, service, sink, batch_metrics,
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
