#include "common/http/curl_call.h"

#include <strings.h>

#include <algorithm>
#include <mutex>
#include <string>

namespace katy::http {

void CurlGlobalInitOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

CurlCall::~CurlCall() { curl_slist_free_all(headers_); }

size_t CurlCall::WriteBody(char* data, size_t size, size_t count, void* user) {
  auto* call = static_cast<CurlCall*>(user);
  const size_t bytes = size * count;
  if (call->max_body_bytes_ > 0 && call->response_.body.size() + bytes > call->max_body_bytes_) {
    call->too_large_ = true;
    return 0;  // libcurl ends the transfer with CURLE_WRITE_ERROR
  }
  call->response_.body.append(data, bytes);
  return bytes;
}

size_t CurlCall::WriteHeader(char* data, size_t size, size_t count, void* user) {
  auto& headers = static_cast<CurlCall*>(user)->response_.headers;
  std::string line(data, size * count);
  auto colon = line.find(':');
  if (colon != std::string::npos) {
    std::string name = line.substr(0, colon);
    std::transform(name.begin(), name.end(), name.begin(), ::tolower);
    std::string value = line.substr(colon + 1);
    auto first = value.find_first_not_of(" \t");
    auto last = value.find_last_not_of(" \t\r\n");
    headers[name] = first == std::string::npos ? "" : value.substr(first, last - first + 1);
  }
  return size * count;
}

void CurlCall::Prepare(CURL* curl, const Request& request, long connect_timeout_ms) {
  bool typed = false;
  for (const auto& header : request.headers) {
    headers_ = curl_slist_append(headers_, header.c_str());
    typed = typed || strncasecmp(header.c_str(), "content-type:", 13) == 0;
  }
  // Every body Katy sends is JSON; libcurl would call it a form.
  if (!request.body.empty() && !typed) headers_ = curl_slist_append(headers_, "Content-Type: application/json");
  // An empty "Expect:" stops libcurl waiting for "100 Continue" before larger bodies.
  headers_ = curl_slist_append(headers_, "Expect:");
  curl_easy_setopt(curl, CURLOPT_URL, request.url.c_str());
  curl_easy_setopt(curl, CURLOPT_HTTPHEADER, headers_);
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, static_cast<long>(request.timeout.count()));
  curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, connect_timeout_ms);
  curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, WriteBody);
  curl_easy_setopt(curl, CURLOPT_WRITEDATA, this);
  curl_easy_setopt(curl, CURLOPT_HEADERFUNCTION, WriteHeader);
  curl_easy_setopt(curl, CURLOPT_HEADERDATA, this);
  if (request.method == "POST") {
    curl_easy_setopt(curl, CURLOPT_POST, 1L);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
    curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
  } else if (request.method != "GET") {
    curl_easy_setopt(curl, CURLOPT_CUSTOMREQUEST, request.method.c_str());
    if (!request.body.empty()) {
      curl_easy_setopt(curl, CURLOPT_POSTFIELDS, request.body.data());
      curl_easy_setopt(curl, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(request.body.size()));
    }
  }
}

Result<Response> CurlCall::Finish(CURL* curl, CURLcode code) {
  if (too_large_) {
    return Error{ErrorCode::kIo, "the answer is larger than " + std::to_string(max_body_bytes_) + " bytes"};
  }
  if (code != CURLE_OK) {
    std::string what = curl_easy_strerror(code);
    if (code == CURLE_OPERATION_TIMEDOUT) return Error{ErrorCode::kTimeout, what};
    if (code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST) return Error{ErrorCode::kConnect, what};
    return Error{ErrorCode::kIo, what};
  }
  curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &response_.status);
  long version = 0;
  curl_easy_getinfo(curl, CURLINFO_HTTP_VERSION, &version);
  response_.http_version = version == CURL_HTTP_VERSION_2_0 ? 2 : 1;
  curl_easy_getinfo(curl, CURLINFO_NUM_CONNECTS, &response_.new_connections);
  return std::move(response_);
}

}  // namespace katy::http
