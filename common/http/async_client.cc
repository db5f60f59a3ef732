#include "common/http/async_client.h"

#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <chrono>
#include <deque>
#include <future>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>
#include <utility>
#include <vector>

#include "common/http/curl_call.h"

namespace katy::http {
namespace {

// One call from Submit to its Completion: the request (libcurl reads from it), the answer as
// it arrives, and the easy handle running it.
struct Call {
  Call(Request r, Completion d, size_t max_body) : request(std::move(r)), done(std::move(d)), state(max_body) {}
  Request request;
  Completion done;
  CurlCall state;
  CURL* easy = nullptr;
};

}  // namespace

// The loop thread and everything it owns. libcurl's multi handle is touched only on the loop
// thread; other threads hand calls over through `submitted_` and wake the loop with an
// eventfd. libcurl says which sockets to watch (SocketChanged) and when it next needs time
// (TimerChanged, a timerfd), and the loop tells it what happened (curl_multi_socket_action).
class AsyncClient::Loop {
 public:
  explicit Loop(const AsyncClientOptions& options) : options_(options) {
    CurlGlobalInitOnce();
    epoll_ = epoll_create1(EPOLL_CLOEXEC);
    wake_ = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    timer_ = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (epoll_ < 0 || wake_ < 0 || timer_ < 0) throw std::runtime_error("async HTTP client: cannot create its loop");
    Watch(wake_, EPOLLIN, EPOLL_CTL_ADD);
    Watch(timer_, EPOLLIN, EPOLL_CTL_ADD);
    multi_ = curl_multi_init();
    curl_multi_setopt(multi_, CURLMOPT_SOCKETFUNCTION, &Loop::SocketChanged);
    curl_multi_setopt(multi_, CURLMOPT_SOCKETDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_TIMERFUNCTION, &Loop::TimerChanged);
    curl_multi_setopt(multi_, CURLMOPT_TIMERDATA, this);
    curl_multi_setopt(multi_, CURLMOPT_PIPELINING, static_cast<long>(CURLPIPE_MULTIPLEX));
    curl_multi_setopt(multi_, CURLMOPT_MAX_HOST_CONNECTIONS, options_.max_connections_per_host);
    curl_multi_setopt(multi_, CURLMOPT_MAX_TOTAL_CONNECTIONS, options_.max_total_connections);
    thread_ = std::thread([this] { Run(); });
  }

  ~Loop() {
    stopping_ = true;
    Wake();
    thread_.join();
    for (CURL* easy : idle_) curl_easy_cleanup(easy);
    curl_multi_cleanup(multi_);
    close(timer_);
    close(wake_);
    close(epoll_);
  }

  void Submit(Request request, Completion done) {
    auto call = std::make_unique<Call>(std::move(request), std::move(done), options_.max_response_bytes);
    ++in_flight_;
    {
      std::lock_guard lock(mutex_);
      submitted_.push_back(std::move(call));
    }
    Wake();
  }

  size_t in_flight() const { return in_flight_.load(); }

 private:
  void Run() {
    epoll_event events[256];
    while (!stopping_) {
      const int ready = epoll_wait(epoll_, events, 256, timeout_due_ ? 0 : -1);
      if (ready < 0 && errno != EINTR) break;
      for (int i = 0; i < ready; ++i) Handle(events[i]);
      // What libcurl asked to be called back for at once (TimerChanged with 0): the calls just
      // added, mostly. Run here, without a timerfd round trip.
      while (std::exchange(timeout_due_, false)) {
        int running = 0;
        curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
      }
      Complete();
    }
    FailEverything();
  }

  void Handle(const epoll_event& event) {
    const int fd = event.data.fd;
    int running = 0;
    if (fd == wake_) {
      uint64_t count;
      while (read(wake_, &count, sizeof count) > 0) {
      }
      Start();
    } else if (fd == timer_) {
      uint64_t expirations;
      while (read(timer_, &expirations, sizeof expirations) > 0) {
      }
      armed_until_ = kNotArmed;
      curl_multi_socket_action(multi_, CURL_SOCKET_TIMEOUT, 0, &running);
      // The timer may have been armed for an earlier need than libcurl's next one (TimerChanged
      // leaves an earlier timer be), and libcurl tells a need only when it changes: ask it.
      long next_ms = -1;
      curl_multi_timeout(multi_, &next_ms);
      ArmFor(next_ms);
    } else {
      int flags = 0;
      if (event.events & EPOLLIN) flags |= CURL_CSELECT_IN;
      if (event.events & EPOLLOUT) flags |= CURL_CSELECT_OUT;
      if (event.events & (EPOLLERR | EPOLLHUP)) flags |= CURL_CSELECT_ERR;
      curl_multi_socket_action(multi_, fd, flags, &running);
    }
  }

  // Hands the submitted calls to libcurl; it asks for a timer at once and starts them there.
  void Start() {
    std::deque<std::unique_ptr<Call>> calls;
    {
      std::lock_guard lock(mutex_);
      calls.swap(submitted_);
    }
    for (auto& owned : calls) {
      Call* call = owned.get();
      call->easy = TakeHandle();
      call->state.Prepare(call->easy, call->request, static_cast<long>(options_.connect_timeout.count()));
      curl_easy_setopt(call->easy, CURLOPT_PRIVATE, call);
      // Over TLS, wait for a connection being set up to say whether it multiplexes (HTTP/2)
      // rather than open another. Never in clear text: HTTP/1.1 there, and a call would wait
      // for the answer to the one ahead of it on that connection.
      if (call->request.url.rfind("https://", 0) == 0) curl_easy_setopt(call->easy, CURLOPT_PIPEWAIT, 1L);
      curl_easy_setopt(call->easy, CURLOPT_HTTP_VERSION, static_cast<long>(CURL_HTTP_VERSION_2TLS));
      curl_easy_setopt(call->easy, CURLOPT_BUFFERSIZE, options_.receive_buffer_bytes);
      if (!options_.ca_file.empty()) curl_easy_setopt(call->easy, CURLOPT_CAINFO, options_.ca_file.c_str());
      active_.emplace(call, std::move(owned));
      curl_multi_add_handle(multi_, call->easy);
    }
  }

  // Runs the completion of every call libcurl finished.
  void Complete() {
    int left = 0;
    while (CURLMsg* message = curl_multi_info_read(multi_, &left)) {
      if (message->msg != CURLMSG_DONE) continue;
      Call* call = nullptr;
      curl_easy_getinfo(message->easy_handle, CURLINFO_PRIVATE, &call);
      const CURLcode code = message->data.result;
      Finish(call, call->state.Finish(call->easy, code));
    }
  }

  void Finish(Call* call, Result<Response> result) {
    curl_multi_remove_handle(multi_, call->easy);
    GiveBack(call->easy);
    auto owned = std::move(active_.at(call));
    active_.erase(call);
    --in_flight_;
    owned->done(std::move(result));
  }

  // An easy handle for a new call: one a finished call gave back, or a new one. Making and
  // freeing a handle per call was ~4% of a saturated sender's CPU (bench/RESULTS.md), much of
  // it in malloc's consolidation of the handle's large buffers.
  CURL* TakeHandle() {
    if (idle_.empty()) return curl_easy_init();
    CURL* easy = idle_.back();
    idle_.pop_back();
    return easy;
  }

  // A finished call's handle, kept for the next call (up to kIdleHandlesKept) with every option
  // reset to libcurl's defaults, so nothing of this call (its method, body, headers, pointers
  // into the freed Call) reaches the next. Its connection is the multi handle's, not its own.
  void GiveBack(CURL* easy) {
    if (idle_.size() >= kIdleHandlesKept) {
      curl_easy_cleanup(easy);
      return;
    }
    curl_easy_reset(easy);
    idle_.push_back(easy);
  }

  void FailEverything() {
    while (!active_.empty()) Finish(active_.begin()->first, Error{ErrorCode::kIo, "client stopped"});
    std::deque<std::unique_ptr<Call>> never_started;
    {
      std::lock_guard lock(mutex_);
      never_started.swap(submitted_);
    }
    for (auto& call : never_started) {
      --in_flight_;
      call->done(Error{ErrorCode::kIo, "client stopped"});
    }
  }

  void Wake() {
    const uint64_t one = 1;
    [[maybe_unused]] auto written = write(wake_, &one, sizeof one);
  }

  void Watch(int fd, uint32_t events, int operation) {
    epoll_event event{};
    event.events = events;
    event.data.fd = fd;
    epoll_ctl(epoll_, operation, fd, &event);
  }

  // libcurl: watch `fd` for `what` (CURL_POLL_IN/OUT/INOUT), or stop (CURL_POLL_REMOVE).
  static int SocketChanged(CURL*, curl_socket_t fd, int what, void* self, void* known) {
    auto* loop = static_cast<Loop*>(self);
    if (what == CURL_POLL_REMOVE) {
      epoll_ctl(loop->epoll_, EPOLL_CTL_DEL, fd, nullptr);
      curl_multi_assign(loop->multi_, fd, nullptr);
      return 0;
    }
    uint32_t events = 0;
    if (what == CURL_POLL_IN || what == CURL_POLL_INOUT) events |= EPOLLIN;
    if (what == CURL_POLL_OUT || what == CURL_POLL_INOUT) events |= EPOLLOUT;
    loop->Watch(fd, events, known != nullptr ? EPOLL_CTL_MOD : EPOLL_CTL_ADD);
    if (known == nullptr) curl_multi_assign(loop->multi_, fd, loop);  // any non-null marks it known
    return 0;
  }

  // libcurl: call back in `timeout_ms` (0: as soon as possible, -1: no timer).
  static int TimerChanged(CURLM*, long timeout_ms, void* self) {
    static_cast<Loop*>(self)->ArmFor(timeout_ms);
    return 0;
  }

  // Sees that libcurl is called back within `timeout_ms`. libcurl moves its need with nearly
  // every step of every call (a timerfd_settime each was 5% of the sender's CPU), and a
  // callback earlier than needed only makes it look and find nothing due, so the timer is
  // re-armed only for an earlier need; when it fires, the loop asks libcurl for the next.
  void ArmFor(long timeout_ms) {
    if (timeout_ms < 0) return;  // no need: an armed timer firing finds nothing due
    if (timeout_ms == 0) {
      timeout_due_ = true;
      return;
    }
    const auto due = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeout_ms);
    if (armed_until_ <= due) return;
    armed_until_ = due;
    itimerspec spec{};
    spec.it_value.tv_sec = timeout_ms / 1000;
    spec.it_value.tv_nsec = timeout_ms % 1000 * 1000000;
    timerfd_settime(timer_, 0, &spec, nullptr);
  }

  AsyncClientOptions options_;
  int epoll_ = -1;
  int wake_ = -1;
  int timer_ = -1;
  CURLM* multi_ = nullptr;
  bool timeout_due_ = false;  // loop thread only
  static constexpr auto kNotArmed = std::chrono::steady_clock::time_point::max();
  std::chrono::steady_clock::time_point armed_until_ = kNotArmed;  // loop thread only
  std::atomic<bool> stopping_{false};
  std::atomic<size_t> in_flight_{0};
  std::mutex mutex_;
  std::deque<std::unique_ptr<Call>> submitted_;              // under mutex_
  std::unordered_map<Call*, std::unique_ptr<Call>> active_;  // loop thread only
  // Handles of finished calls, reset, for the next ones (loop thread only). A few KB each; the
  // bound keeps what a burst of thousands of calls leaves behind small.
  static constexpr size_t kIdleHandlesKept = 256;
  std::vector<CURL*> idle_;
  std::thread thread_;
};

AsyncClient::AsyncClient(const AsyncClientOptions& options) : loop_(std::make_unique<Loop>(options)) {}

AsyncClient::~AsyncClient() = default;

void AsyncClient::Submit(Request request, Completion done) { loop_->Submit(std::move(request), std::move(done)); }

size_t AsyncClient::in_flight() const { return loop_->in_flight(); }

Result<Response> SubmitAndWait(AsyncClient& client, Request request) {
  std::promise<Result<Response>> answered;
  auto answer = answered.get_future();
  client.Submit(std::move(request),
                [&answered](Result<Response> response) { answered.set_value(std::move(response)); });
  return answer.get();
}

}  // namespace katy::http
