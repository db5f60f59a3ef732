#include "common/http/http_client.h"

#include <curl/curl.h>

#include <cctype>

#include "common/http/curl_call.h"

namespace katy::http {

std::string Response::Header(const std::string& name) const {
  auto it = headers.find(name);
  return it == headers.end() ? "" : it->second;
}

Client::Client(std::chrono::milliseconds timeout, std::chrono::milliseconds connect_timeout)
    : timeout_(timeout), connect_timeout_(connect_timeout) {
  CurlGlobalInitOnce();
  curl_ = curl_easy_init();
}

Client::~Client() { curl_easy_cleanup(static_cast<CURL*>(curl_)); }

void Client::DropConnections() {
  curl_easy_cleanup(static_cast<CURL*>(curl_));  // the handle owns its connection cache
  curl_ = curl_easy_init();
}

Result<Response> Client::Get(const std::string& url, const std::vector<std::string>& headers) {
  return Request("GET", url, "", headers);
}

Result<Response> Client::Post(const std::string& url, const std::string& body,
                              const std::vector<std::string>& headers) {
  return Request("POST", url, body, headers);
}

Result<Response> Client::Request(const std::string& method, const std::string& url, const std::string& body,
                                 const std::vector<std::string>& headers) {
  CURL* curl = static_cast<CURL*>(curl_);
  curl_easy_reset(curl);  // keeps the connection cache: the next call to the host reuses it
  const http::Request request{method, url, body, headers, timeout_};
  CurlCall call;
  call.Prepare(curl, request, static_cast<long>(connect_timeout_.count()));
  return call.Finish(curl, curl_easy_perform(curl));
}

std::string UrlEncode(const std::string& text) {
  static constexpr char kDigits[] = "0123456789ABCDEF";
  std::string out;
  for (unsigned char c : text) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out += static_cast<char>(c);
    } else {
      out += '%';
      out += kDigits[c >> 4];
      out += kDigits[c & 0xF];
    }
  }
  return out;
}

std::string UrlDecode(std::string_view text) {
  std::string out;
  for (size_t i = 0; i < text.size(); ++i) {
    if (text[i] == '+') {
      out += ' ';
    } else if (text[i] == '%' && i + 2 < text.size() && std::isxdigit(static_cast<unsigned char>(text[i + 1])) &&
               std::isxdigit(static_cast<unsigned char>(text[i + 2]))) {
      out += static_cast<char>(std::stoi(std::string(text.substr(i + 1, 2)), nullptr, 16));
      i += 2;
    } else {
      out += text[i];
    }
  }
  return out;
}

}  // namespace katy::http
