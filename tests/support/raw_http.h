#pragma once

#include <chrono>
#include <random>
#include <string>

// Clients that speak HTTP/1.1 over a bare TCP socket, for what libcurl will not do:
// pipelining, a head without its body, bytes in fragments, reading until the server closes.
namespace katy::testing {

// A TCP connection to 127.0.0.1:port, or -1. `receive_buffer` > 0 shrinks the socket's
// receive buffer first (a client slow to take what it is sent).
int ConnectLoopback(int port, int receive_buffer = 0);

// One connection; every read gives up after `receive_timeout` without a byte.
class RawClient {
 public:
  explicit RawClient(int port, std::chrono::seconds receive_timeout = std::chrono::seconds(5));
  ~RawClient();
  RawClient(const RawClient&) = delete;
  RawClient& operator=(const RawClient&) = delete;

  bool connected() const { return fd_ >= 0; }
  bool Send(const std::string& bytes);
  // Everything until the server closes the connection (or the receive timeout passes
  // without a byte; then closed() is false).
  std::string ReadUntilClosed();
  // What arrives until it contains `marker` (or the receive timeout passes without a byte).
  std::string ReadUntil(const std::string& marker);
  bool closed() const { return closed_; }

 private:
  int fd_ = -1;
  bool closed_ = false;
};

// A client connection for chaos tests: writes requests in pieces and reads answers one at a
// time, however the server's bytes are split or run together on the wire. Reconnects on Open
// after the server closed it.
class ChaosConnection {
 public:
  static constexpr int kNoAnswer = -1;  // nothing within 5 s: the server hangs
  static constexpr int kGone = 0;       // the connection ended before the answer

  explicit ChaosConnection(int port) : port_(port) {}
  ~ChaosConnection() { Close(); }
  ChaosConnection(const ChaosConnection&) = delete;
  ChaosConnection& operator=(const ChaosConnection&) = delete;

  bool Open();
  void Close();
  // Writes `bytes` in `pieces` fragments, pausing up to a millisecond between them.
  bool Write(const std::string& bytes, int pieces, std::mt19937& random);
  // The status of the next answer, kGone or kNoAnswer. Closes after a `Connection: close`.
  int ReadStatus();

 private:
  int port_;
  int fd_ = -1;
  std::string in_;
};

}  // namespace katy::testing
