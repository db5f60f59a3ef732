#pragma once

#include <pistache/http.h>

namespace katy::http {

// A response header with a plain string value. Pistache 0.0.5 writes only typed headers
// (headers().addRaw() values never reach the wire), so every header Katy sends that Pistache
// does not define gets a class from this template.
template <const char* kName>
class StringHeader : public Pistache::Http::Header::Header {
 public:
  NAME(kName)
  StringHeader() = default;
  explicit StringHeader(std::string value) : value_(std::move(value)) {}
  void parse(const std::string& data) override { value_ = data; }
  void write(std::ostream& os) const override { os << value_; }
  const std::string& value() const { return value_; }

 private:
  std::string value_;
};

// Pistache 0.0.5 presets "Connection: Close" on every response to a request without a
// Connection header, even on HTTP/1.1 where keep-alive is the default (about 5x fewer
// requests/s with connection churn), and add<> does not replace a header already there.
// Call before sending: keeps HTTP/1.1 connections open unless the client asked to close.
inline void KeepAliveUnlessClosed(const Pistache::Http::Request& request, Pistache::Http::ResponseWriter& response) {
  using Pistache::Http::ConnectionControl;
  auto connection = request.headers().tryGet<Pistache::Http::Header::Connection>();
  bool client_closes = connection && connection->control() == ConnectionControl::Close;
  if (request.version() == Pistache::Http::Version::Http11 && !client_closes) {
    response.headers().remove<Pistache::Http::Header::Connection>();
    response.headers().add<Pistache::Http::Header::Connection>(ConnectionControl::KeepAlive);
  }
}

}  // namespace katy::http
