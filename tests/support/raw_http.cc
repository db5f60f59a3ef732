#include "tests/support/raw_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <thread>

namespace katy::testing {
namespace {

void SetReceiveTimeout(int fd, std::chrono::seconds timeout) {
  timeval wait{static_cast<time_t>(timeout.count()), 0};
  setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &wait, sizeof wait);
}

}  // namespace

int ConnectLoopback(int port, int receive_buffer) {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  if (receive_buffer > 0) setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &receive_buffer, sizeof receive_buffer);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = htons(static_cast<uint16_t>(port));
  if (connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0) return fd;
  close(fd);
  return -1;
}

RawClient::RawClient(int port, std::chrono::seconds receive_timeout) : fd_(ConnectLoopback(port)) {
  if (fd_ >= 0) SetReceiveTimeout(fd_, receive_timeout);
}

RawClient::~RawClient() {
  if (fd_ >= 0) close(fd_);
}

bool RawClient::Send(const std::string& bytes) {
  return send(fd_, bytes.data(), bytes.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(bytes.size());
}

std::string RawClient::ReadUntilClosed() {
  std::string all;
  char buffer[4096];
  ssize_t got = 0;
  while ((got = recv(fd_, buffer, sizeof buffer, 0)) > 0) all.append(buffer, static_cast<size_t>(got));
  closed_ = got == 0;
  return all;
}

std::string RawClient::ReadUntil(const std::string& marker) {
  std::string all;
  char buffer[4096];
  while (all.find(marker) == std::string::npos) {
    const ssize_t got = recv(fd_, buffer, sizeof buffer, 0);
    if (got <= 0) {
      closed_ = got == 0;
      break;
    }
    all.append(buffer, static_cast<size_t>(got));
  }
  return all;
}

bool ChaosConnection::Open() {
  if (fd_ >= 0) return true;
  fd_ = ConnectLoopback(port_);
  if (fd_ >= 0) SetReceiveTimeout(fd_, std::chrono::seconds(5));
  return fd_ >= 0;
}

void ChaosConnection::Close() {
  if (fd_ >= 0) close(fd_);
  fd_ = -1;
  in_.clear();
}

bool ChaosConnection::Write(const std::string& bytes, int pieces, std::mt19937& random) {
  const size_t step = bytes.size() / static_cast<size_t>(pieces) + 1;
  for (size_t at = 0; at < bytes.size(); at += step) {
    const size_t n = std::min(step, bytes.size() - at);
    if (send(fd_, bytes.data() + at, n, MSG_NOSIGNAL) != static_cast<ssize_t>(n)) return false;
    if (at + n < bytes.size()) std::this_thread::sleep_for(std::chrono::microseconds(random() % 1000));
  }
  return true;
}

int ChaosConnection::ReadStatus() {
  while (true) {
    const size_t head_end = in_.find("\r\n\r\n");
    if (head_end != std::string::npos) {
      const std::string head = in_.substr(0, head_end);
      const size_t length_at = head.find("Content-Length: ");
      const size_t length = length_at == std::string::npos ? 0 : std::stoul(head.substr(length_at + 16));
      if (in_.size() >= head_end + 4 + length) {
        const int status = std::stoi(head.substr(9, 3));
        in_.erase(0, head_end + 4 + length);
        if (head.find("Connection: close") != std::string::npos) Close();
        return status;
      }
    }
    char buffer[4096];
    const ssize_t got = recv(fd_, buffer, sizeof buffer, 0);
    if (got < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) return kNoAnswer;
    if (got <= 0) {
      Close();
      return kGone;
    }
    in_.append(buffer, static_cast<size_t>(got));
  }
}

}  // namespace katy::testing
