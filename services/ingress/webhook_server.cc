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
#include <optional>
#include <unordered_map>

#include "common/log.h"
#include "common/runtime/open_files.h"
#include "services/ingress/http1.h"
#include "services/ingress/http_connection.h"
#include "services/ingress/store_pipeline.h"

namespace katy::ingress {
namespace {

// Meta's data deletion callback and the status page its answer points to (data_deletion.h).
constexpr std::string_view kDeletionPath = "/data-deletion";
constexpr std::string_view kDeletionStatusPath = "/data-deletion/status";

using Clock = std::chrono::steady_clock;

using Clock = std::chrono::steady_clock;

Result<int> Listen(const config::HostPort& address) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string host = address.host.empty() ? "0.0.0.0" : address.host;
  const std::string port = std::to_string(address.port);
  if (int rc = getaddrinfo(host.c_str(), port.c_str(), &hints, &found); rc != 0) {
    return Error{ErrorCode::kIo, "cannot resolve " + address.ToString() + ": " + gai_strerror(rc)};
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
  return Error{ErrorCode::kIo, "cannot serve HTTP on " + address.ToString() + ": " + last_error};
}

int BoundPort(int fd) {
  sockaddr_storage addr{};
  socklen_t len = sizeof addr;
  if (getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) != 0) return 0;
  if (addr.ss_family == AF_INET6) return ntohs(reinterpret_cast<sockaddr_in6*>(&addr)->sin6_port);
  return ntohs(reinterpret_cast<sockaddr_in*>(&addr)->sin_port);
}

}  // namespace

size_t MaxConnectionsFor(uint64_t open_file_limit) {
  // Descriptors kept for everything else: Redis connections (one per loop, the health check,
  // Control's pool), gRPC, the admin server and its connections, files.
  constexpr uint64_t kReserved = 256;
  constexpr uint64_t kFloor = 16;
  return static_cast<size_t>(std::max(kFloor, open_file_limit > kReserved ? open_file_limit - kReserved : 0));
}

// What every loop of one server shares.
struct LoopShared {
  int listen_fd = -1;
  int wake_fd = -1;
  const std::atomic<bool>* stopping = nullptr;
  std::atomic<size_t>* connections = nullptr;  // held by all loops together
  size_t max_connections = 0;
  prometheus::Gauge* connections_gauge = nullptr;
  PipelineMetrics pipeline;
};

// One event loop: its own epoll, its own connections, its own store pipeline and Redis
// connection. Used only by its thread.
class WebhookServer::Loop final : public ConnectionHost {
 public:
  Loop(const ServerOptions& options, const WebhookService& service, const StoreOptions& store, LoopShared shared)
      : limits_{16 * 1024, options.max_body_bytes},
        timeouts_{options.read_timeout, options.idle_timeout, kLingerTime},
        service_(service),
        store_keys_(store.keys),
        shared_(shared),
        pipeline_(store, service, shared.pipeline,
                  [this](const ConnectionPtr& conn, const HttpReply& reply) { Answer(conn, reply); }) {
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    if (epoll_ < 0) throw std::runtime_error(std::string("epoll_create1: ") + std::strerror(errno));
    // EPOLLEXCLUSIVE: a new connection wakes one loop, not all of them.
    if (!Watch(EPOLL_CTL_ADD, shared_.listen_fd, EPOLLIN | EPOLLEXCLUSIVE, &listen_tag_) ||
        !Watch(EPOLL_CTL_ADD, shared_.wake_fd, EPOLLIN, &wake_tag_)) {
      close(epoll_);
      throw std::runtime_error(std::string("epoll_ctl: ") + std::strerror(errno));
    }
  }

  ~Loop() override {
    for (auto& [fd, conn] : connections_) close(fd);
    close(epoll_);
  }

  void Run() {
    Clock::time_point next_sweep = Clock::now() + kSweepInterval;
    while (!shared_.stopping->load(std::memory_order_relaxed)) {
      Pass(resume_.empty() ? static_cast<int>(kSweepInterval.count()) : 0);
      if (now_ >= next_sweep) {
        Sweep();
        next_sweep = now_ + kSweepInterval;
      }
    }
    Drain();
  }

  // ConnectionHost: what the webhook port serves.
  void OnRequest(const ConnectionPtr& conn, const HttpRequest& request) override {
    if (std::optional<HttpReply> refusal = RouteError(request)) return Answer(conn, Counted(*refusal));
    if (request.path == kDeletionStatusPath) return DeletionStatus(conn, request);
    if (request.path == kDeletionPath) return Deletion(conn, request);
    if (request.method == "GET") return Answer(conn, Counted(Handshake(request)));
    auto checked =
        service_.CheckPost(request.body, request.Header("X-Hub-Signature-256"), request.Header("X-Hub-Signature"));
    if (auto* events = std::get_if<std::vector<katy::v1::InboundEvent>>(&checked)) {
      return pipeline_.Add(conn, std::move(*events), now_);
    }
    Answer(conn, Counted(std::get<HttpReply>(std::move(checked))));
  }

  // Only a POST to /webhook is worth its body. A handshake GET is answered on its head.
  std::optional<HttpReply> CheckHead(const HttpRequest& head) override {
    if (std::optional<HttpReply> refusal = RouteError(head)) return Counted(*refusal);
    if (head.path == kDeletionStatusPath) return std::nullopt;  // answered once Redis has
    if (head.method == "GET") return Counted(Handshake(head));
    return std::nullopt;
  }

  HttpReply OnMalformed(int status, std::string_view reason) override {
    return Counted(service_.Reject(status, status == 413 ? "too_large" : "bad_http", std::string(reason)));
  }

  HttpReply OnReadTimeout() override {
    return Counted(service_.Reject(408, "read_timeout", "request not received in time"));
  }

  void ScheduleResume(const ConnectionPtr& conn) override { resume_.push_back(conn); }

  void OnClosed(HttpConnection& conn) override {
    Watch(EPOLL_CTL_DEL, conn.fd(), 0, nullptr);
    close(conn.fd());
    const size_t held = shared_.connections->fetch_sub(1, std::memory_order_relaxed) - 1;
    if (shared_.connections_gauge != nullptr) shared_.connections_gauge->Set(static_cast<double>(held));
    // Events of this pass and answers in flight may still point at it: it is freed when
    // both are done with it.
    auto it = connections_.find(conn.fd());
    graveyard_.push_back(std::move(it->second));
    connections_.erase(it);
  }

 private:
  // How often a loop looks for connections past their deadline.
  static constexpr auto kSweepInterval = std::chrono::milliseconds(100);
  // After answering a request it refuses (413 mid-body, say), a connection is half-closed and
  // its remaining input discarded for this long, so the answer is not destroyed by a reset.
  static constexpr auto kLingerTime = std::chrono::milliseconds(2000);

  // One turn of the loop: wait, do every I/O epoll reports, send this pass's batch.
  void Pass(int timeout_ms) {
    epoll_event events[256];
    const int n = epoll_wait(epoll_, events, 256, timeout_ms);
    if (n < 0 && errno != EINTR)
      loop_log_.Write(log::Level::kError, "epoll_wait failed", {{"error", std::strerror(errno)}});
    now_ = Clock::now();
    for (ConnectionPtr& conn : std::exchange(resume_, {})) {
      if (!conn->closed()) conn->Resume(now_);
    }
    for (int i = 0; i < n; ++i) {
      void* tag = events[i].data.ptr;
      if (tag == &listen_tag_) {
        AcceptAll();
      } else if (StoreWatch* store = FindStoreWatch(tag)) {
        store->connection->OnEvents(events[i].events);
      } else if (tag != &wake_tag_) {
        // Connections closed in this pass are still in the graveyard, so `tag` is valid.
        static_cast<HttpConnection*>(tag)->OnReady(events[i].events, now_);
      }
    }
    SendToStore();
    graveyard_.clear();
  }

  // Stopping: accept and read nothing more, but finish what the pipeline holds (it ends,
  // stored or failed, within the store's timeout) so every request read gets its answer.
  void Drain() {
    Watch(EPOLL_CTL_DEL, shared_.listen_fd, 0, nullptr);
    Watch(EPOLL_CTL_DEL, shared_.wake_fd, 0, nullptr);
    draining_ = true;
    std::vector<ConnectionPtr> idle;
    for (auto& [fd, conn] : connections_) {
      const auto state = conn->state();
      if (state != HttpConnection::State::kAwaiting && state != HttpConnection::State::kWriting) idle.push_back(conn);
    }
    for (const ConnectionPtr& conn : idle) conn->Close();
    graveyard_.clear();
    // Status pages read from Redis are answered too.
    while (!pipeline_.idle() || pipeline_.redis().waiting() > 0) {
      Pass(static_cast<int>(kSweepInterval.count()));
      pipeline_.redis().CheckTimeouts(now_);
      SendToStore();
    }
  }

  // Requests read so far go to Redis; the Redis socket's watch follows its needs.
  void SendToStore() {
    pipeline_.Dispatch();
    pipeline_.redis().Flush();
    SyncStoreWatches();
  }

  std::optional<HttpReply> RouteError(const HttpRequest& request) const {
    if (request.path == kDeletionPath && request.method != "POST") return HttpReply{405, "POST only\n", 0, "POST"};
    if (request.path == kDeletionStatusPath && request.method != "GET") return HttpReply{405, "GET only\n", 0, "GET"};
    if (request.path == kDeletionPath || request.path == kDeletionStatusPath) return std::nullopt;
    if (request.path != "/webhook") return HttpReply{404, "not found\n", 0, {}};
    if (request.method != "GET" && request.method != "POST") {
      return HttpReply{405, "GET or POST only\n", 0, "GET, POST"};
    }
    return std::nullopt;
  }

  // Meta's data deletion callback: made durable like a webhook's events, then answered with
  // its status page and confirmation code (data_deletion.h).
  void Deletion(const ConnectionPtr& conn, const HttpRequest& request) {
    auto checked = service_.CheckDeletion(request.body);
    if (auto* accepted = std::get_if<DeletionAccepted>(&checked)) {
      std::vector<katy::v1::InboundEvent> events{std::move(accepted->event)};
      return pipeline_.Add(conn, std::move(events), now_, std::move(accepted->answer_json));
    }
    Answer(conn, Counted(std::get<HttpReply>(std::move(checked))));
  }

  // The status page of a deletion request: one GET of its record on the loop's own
  // (non-blocking) Redis connection.
  void DeletionStatus(const ConnectionPtr& conn, const HttpRequest& request) {
    auto code = StatusCode(service_.deletion(), request.query);
    if (auto* reply = std::get_if<HttpReply>(&code)) return Answer(conn, Counted(std::move(*reply)));
    const std::string key = store_keys_.DeletionStatus(std::get<std::string>(code));
    pipeline_.redis().Send({"GET", key},
                           [this, conn, code = std::get<std::string>(code)](const Result<redis::Reply>& record) {
                             Answer(conn, Counted(StatusAnswer(service_.deletion(), code, record, service_.NowMs())));
                           });
  }

  HttpReply Handshake(const HttpRequest& request) const {
    return service_.HandleGet(QueryParam(request.query, "hub.mode").value_or(""),
                              QueryParam(request.query, "hub.verify_token").value_or(""),
                              QueryParam(request.query, "hub.challenge").value_or(""));
  }

  // A reply the loop gives without the store: counted as a request now.
  HttpReply Counted(HttpReply reply) const {
    service_.RecordRequest(reply.status, 0);
    return reply;
  }

  // `reply` was counted where it was made (Counted, or the pipeline with its store time).
  void Answer(const ConnectionPtr& conn, const HttpReply& reply) {
    if (conn->closed()) return;  // the client left; its events are stored all the same
    conn->Respond(reply, draining_, now_);
  }

  void AcceptAll() {
    while (true) {
      const int fd = accept4(shared_.listen_fd, nullptr, nullptr, SOCK_NONBLOCK | SOCK_CLOEXEC);
      if (fd < 0) {
        if (errno == EINTR || errno == ECONNABORTED) continue;
        if (errno == EMFILE || errno == ENFILE || errno == ENOBUFS || errno == ENOMEM) {
          // Out of descriptors: the listener would wake this loop in a spin. Stop listening
          // until the next sweep; pending connections wait in the backlog.
          accept_log_.Write(log::Level::kError, "cannot accept connections", {{"error", std::strerror(errno)}});
          if (Watch(EPOLL_CTL_DEL, shared_.listen_fd, 0, nullptr)) accept_paused_ = true;
        }
        return;  // EAGAIN: another loop took it, or the backlog is empty
      }
      if (!AdmitConnection()) {
        RefuseConnection(fd);
        continue;
      }
      const int one = 1;
      // Answers are small and written whole: send them now, not after a delayed ACK.
      setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
      auto conn = std::make_shared<HttpConnection>(fd, *this, limits_, timeouts_, now_);
      // Edge-triggered, registered once: a connection's state decides what to do with an
      // edge, so no request costs an epoll_ctl.
      if (!Watch(EPOLL_CTL_ADD, fd, EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET, conn.get())) {
        close(fd);
        ReleaseConnection();
        continue;
      }
      connections_.emplace(fd, std::move(conn));
    }
  }

  // Takes one of the server's connection slots; false when all are held.
  bool AdmitConnection() {
    const size_t held = shared_.connections->fetch_add(1, std::memory_order_relaxed) + 1;
    if (held > shared_.max_connections) {
      ReleaseConnection();
      return false;
    }
    if (shared_.connections_gauge != nullptr) shared_.connections_gauge->Set(static_cast<double>(held));
    return true;
  }

  void ReleaseConnection() { shared_.connections->fetch_sub(1, std::memory_order_relaxed); }

  // Over the limit: a short answer the client can act on (Meta retries a 503), then close.
  void RefuseConnection(int fd) {
    const HttpReply reply = Counted(service_.Reject(503, "too_many_connections", "too many connections, retry"));
    std::string answer;
    AppendHttpResponse(answer, reply.status, reply.body, 1, false);
    send(fd, answer.data(), answer.size(), MSG_NOSIGNAL | MSG_DONTWAIT);
    close(fd);
  }

  void Sweep() {
    if (accept_paused_ && Watch(EPOLL_CTL_ADD, shared_.listen_fd, EPOLLIN | EPOLLEXCLUSIVE, &listen_tag_)) {
      accept_paused_ = false;
    }
    // Replies that arrived while this pass was busy are read first: a timeout must mean Redis
    // did not answer, not that the loop had not looked yet.
    for (const auto& connection : pipeline_.redis().connections()) connection->OnEvents(EPOLLIN);
    pipeline_.redis().CheckTimeouts(now_);
    SendToStore();
    std::vector<ConnectionPtr> expired;
    for (auto& [fd, conn] : connections_) {
      if (conn->state() != HttpConnection::State::kAwaiting && now_ >= conn->deadline()) expired.push_back(conn);
    }
    for (const ConnectionPtr& conn : expired) conn->Expire();
  }

  // What epoll watches of one Redis connection; its address is the connection's epoll tag.
  struct StoreWatch {
    redis::AsyncConnection* connection;
    bool watched = false;
    uint64_t generation = 0;
    uint32_t events = 0;
  };

  // Each Redis socket (one per master on a cluster) changes with each reconnection, and wants
  // EPOLLOUT only while it has output queued.
  void SyncStoreWatches() {
    const auto& connections = pipeline_.redis().connections();
    while (store_watches_.size() < connections.size()) {
      store_watches_.push_back(StoreWatch{connections[store_watches_.size()].get()});
    }
    for (StoreWatch& watch : store_watches_) SyncStoreWatch(watch);
  }

  void SyncStoreWatch(StoreWatch& watch) {
    const redis::AsyncConnection& redis = *watch.connection;
    if (redis.fd() < 0) {
      watch.watched = false;  // a closed socket left the epoll set by itself
      return;
    }
    const uint32_t want = EPOLLIN | (redis.wants_write() ? EPOLLOUT : 0u);
    if (!watch.watched || watch.generation != redis.generation()) {
      watch.watched = Watch(EPOLL_CTL_ADD, redis.fd(), want, &watch);
      watch.generation = redis.generation();
      watch.events = want;
    } else if (want != watch.events && Watch(EPOLL_CTL_MOD, redis.fd(), want, &watch)) {
      watch.events = want;
    }
  }

  StoreWatch* FindStoreWatch(void* tag) {
    for (StoreWatch& watch : store_watches_) {
      if (tag == &watch) return &watch;
    }
    return nullptr;
  }

  // epoll_ctl, with a failure logged (at a bounded rate) and returned.
  bool Watch(int op, int fd, uint32_t events, void* tag) {
    epoll_event ev{};
    ev.events = events;
    ev.data.ptr = tag;
    if (epoll_ctl(epoll_, op, fd, &ev) == 0) return true;
    loop_log_.Write(log::Level::kError, "epoll_ctl failed", {{"op", op}, {"fd", fd}, {"error", std::strerror(errno)}});
    return false;
  }

  const HttpLimits limits_;
  const ConnectionTimeouts timeouts_;
  const WebhookService& service_;
  KeySpace store_keys_;
  const LoopShared shared_;
  StorePipeline pipeline_;
  int epoll_ = -1;
  char listen_tag_ = 0;  // epoll tags: addresses told apart from connections
  char wake_tag_ = 0;
  std::deque<StoreWatch> store_watches_;  // a deque: tags stay valid as it grows
  bool accept_paused_ = false;
  bool draining_ = false;
  Clock::time_point now_ = Clock::now();
  std::unordered_map<int, ConnectionPtr> connections_;
  std::vector<ConnectionPtr> resume_;     // to read (on) at the start of the next pass
  std::vector<ConnectionPtr> graveyard_;  // closed in this pass
  log::RateLimited accept_log_{std::chrono::seconds(1)};
  log::RateLimited loop_log_{std::chrono::seconds(1)};
};

Result<std::unique_ptr<WebhookServer>> WebhookServer::Start(const ServerOptions& options, const WebhookService& service,
                                                            const StoreOptions& store, prometheus::Registry* metrics) {
  auto listen_fd = Listen(options.address);
  if (!listen_fd) return listen_fd.error();
  std::unique_ptr<WebhookServer> server(new WebhookServer());
  server->listen_fd_ = *listen_fd;
  server->port_ = BoundPort(*listen_fd);
  server->wake_fd_ = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
  if (server->wake_fd_ < 0) return Error{ErrorCode::kIo, std::string("eventfd: ") + std::strerror(errno)};

  server->options_ = options;
  server->max_connections_ =
      options.max_connections > 0 ? options.max_connections : MaxConnectionsFor(runtime::OpenFileLimit());
  LoopShared shared{server->listen_fd_,
                    server->wake_fd_,
                    &server->stopping_,
                    &server->connections_,
                    server->max_connections_,
                    nullptr,
                    {}};
  if (metrics != nullptr) {
    shared.pipeline.requests = &prometheus::BuildHistogram()
                                    .Name("katy_ingress_batch_requests")
                                    .Help("Webhook requests stored per Redis round trip")
                                    .Register(*metrics)
                                    .Add({}, prometheus::Histogram::BucketBoundaries{1, 2, 4, 8, 16, 32, 64, 128, 256});
    shared.pipeline.seconds = &prometheus::BuildHistogram()
                                   .Name("katy_ingress_store_seconds")
                                   .Help("Time of one Redis round trip storing a batch")
                                   .Register(*metrics)
                                   .Add({}, metrics::LatencyBuckets());
    shared.connections_gauge = &prometheus::BuildGauge()
                                    .Name("katy_ingress_connections")
                                    .Help("Client connections held on the webhook port")
                                    .Register(*metrics)
                                    .Add({});
  }
  try {
    for (int i = 0; i < std::max(options.threads, 1); ++i) {
      server->loops_.push_back(std::make_unique<Loop>(server->options_, service, store, shared));
    }
  } catch (const std::exception& e) {
    return Error{ErrorCode::kIo, e.what()};
  }
  for (auto& loop : server->loops_) server->threads_.emplace_back([raw = loop.get()] { raw->Run(); });
  return server;
}

WebhookServer::~WebhookServer() { Shutdown(); }

void WebhookServer::Shutdown() {
  if (stopping_.exchange(true)) return;
  const uint64_t one = 1;
  // The eventfd stays readable, so every loop wakes (and wakes again) until it has stopped.
  if (write(wake_fd_, &one, sizeof one) < 0)
    log::Error("cannot wake the HTTP loops", {{"error", std::strerror(errno)}});
  for (auto& thread : threads_) thread.join();
  loops_.clear();  // closes every connection
  close(listen_fd_);
  close(wake_fd_);
}

}  // namespace katy::ingress
