#pragma once

#include <pistache/http.h>

namespace katy::http {

// Pistache 0.0.5 presets "Connection: Close" on every response to a request without a
// Connection header, even on HTTP/1.1 where keep-alive is the default (about 5x fewer
// requests/s with connection churn), and add<> does not replace a header already there.
// Call before sending: keeps HTTP/1.1 connections open unless the client asked to close.
inline void KeepAliveUnlessClosed(const Pistache::Http::Request& request,
                                  Pistache::Http::ResponseWriter& response) {
  using Pistache::Http::ConnectionControl;
  auto connection = request.headers().tryGet<Pistache::Http::Header::Connection>();
  bool client_closes = connection && connection->control() == ConnectionControl::Close;
  if (request.version() == Pistache::Http::Version::Http11 && !client_closes) {
    response.headers().remove<Pistache::Http::Header::Connection>();
    response.headers().add<Pistache::Http::Header::Connection>(ConnectionControl::KeepAlive);
  }
}

// The value of a request header that Pistache keeps raw (any non-standard one), or "".
inline std::string RawHeader(const Pistache::Http::Request& request, const std::string& name) {
  auto raw = request.headers().tryGetRaw(name);
  return raw ? raw->value() : std::string();
}

}  // namespace katy::http
