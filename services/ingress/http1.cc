#include "services/ingress/http1.h"

#include <charconv>

namespace katy::ingress {
namespace {

constexpr std::string_view kCrlf = "\r\n";

bool EqualsIgnoreCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (size_t i = 0; i < a.size(); ++i) {
    char x = a[i], y = b[i];
    if (x >= 'A' && x <= 'Z') x = static_cast<char>(x - 'A' + 'a');
    if (y >= 'A' && y <= 'Z') y = static_cast<char>(y - 'A' + 'a');
    if (x != y) return false;
  }
  return true;
}

// RFC 9110 tchar: what method and header names are made of.
bool IsTokenChar(char c) {
  if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9')) return true;
  switch (c) {
    case '!':
    case '#':
    case '$':
    case '%':
    case '&':
    case '\'':
    case '*':
    case '+':
    case '-':
    case '.':
    case '^':
    case '_':
    case '`':
    case '|':
    case '~':
      return true;
    default:
      return false;
  }
}

bool IsToken(std::string_view s) {
  if (s.empty()) return false;
  for (char c : s) {
    if (!IsTokenChar(c)) return false;
  }
  return true;
}

// Field values may hold visible characters, spaces, tabs and obs-text, never control characters
// (a bare CR or LF in a value is how request smuggling starts).
bool IsFieldValue(std::string_view s) {
  for (char c : s) {
    const auto u = static_cast<unsigned char>(c);
    if ((u < 0x20 && c != '\t') || u == 0x7f) return false;
  }
  return true;
}

std::string_view TrimWhitespace(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// True when the comma-separated list `value` holds `token` (case-insensitive).
bool ListContains(std::string_view value, std::string_view token) {
  while (!value.empty()) {
    const size_t comma = value.find(',');
    if (EqualsIgnoreCase(TrimWhitespace(value.substr(0, comma)), token)) return true;
    if (comma == std::string_view::npos) break;
    value.remove_prefix(comma + 1);
  }
  return false;
}

HttpParse Fail(int status, std::string_view reason) {
  HttpParse out;
  out.status = HttpParse::Status::kError;
  out.error_status = status;
  out.error = reason;
  return out;
}

int HexValue(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

std::string FormDecode(std::string_view s) {
  std::string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size(); ++i) {
    if (s[i] == '+') {
      out += ' ';
    } else if (s[i] == '%' && i + 2 < s.size() && HexValue(s[i + 1]) >= 0 && HexValue(s[i + 2]) >= 0) {
      out += static_cast<char>(HexValue(s[i + 1]) * 16 + HexValue(s[i + 2]));
      i += 2;
    } else {
      out += s[i];  // a stray '%' stays as it is
    }
  }
  return out;
}

}  // namespace

std::string_view HttpRequest::Header(std::string_view name) const {
  for (size_t i = 0; i < header_count; ++i) {
    if (EqualsIgnoreCase(headers[i].name, name)) return headers[i].value;
  }
  return {};
}

namespace {

// What the header fields say that matters once they have all been read.
struct HeaderFacts {
  std::optional<size_t> content_length;
  bool has_transfer_encoding = false;
  int hosts = 0;
  bool connection_close = false;       // any Connection header says close
  bool connection_keep_alive = false;  // any Connection header says keep-alive
};

// The request line, METHOD SP target SP HTTP/1.x, into `request`. The failure to answer, or
// nullopt.
std::optional<HttpParse> ParseRequestLine(std::string_view line, HttpRequest& request, bool* http10) {
  const size_t sp1 = line.find(' ');
  const size_t sp2 = sp1 == std::string_view::npos ? sp1 : line.find(' ', sp1 + 1);
  if (sp2 == std::string_view::npos || line.find(' ', sp2 + 1) != std::string_view::npos) {
    return Fail(400, "bad request line");
  }
  request.method = line.substr(0, sp1);
  const std::string_view target = line.substr(sp1 + 1, sp2 - sp1 - 1);
  const std::string_view version = line.substr(sp2 + 1);
  if (!IsToken(request.method) || target.empty() || target.front() != '/' || !IsFieldValue(target)) {
    return Fail(400, "bad request line");
  }
  if (version.size() != 8 || version.substr(0, 5) != "HTTP/" || version[6] != '.') {
    return Fail(400, "bad request line");
  }
  if (version[5] != '1') return Fail(505, "only HTTP/1.x is served");
  *http10 = version[7] == '0';
  const size_t question = target.find('?');
  request.path = target.substr(0, question);
  if (question != std::string_view::npos) request.query = target.substr(question + 1);
  return std::nullopt;
}

// The value of a Content-Length header into `facts`. The failure to answer, or nullopt.
std::optional<HttpParse> ReadContentLength(std::string_view value, HeaderFacts& facts) {
  size_t length = 0;
  const auto [end_ptr, ec] = std::from_chars(value.data(), value.data() + value.size(), length);
  if (ec == std::errc::result_out_of_range) return Fail(413, "body too large");
  if (ec != std::errc() || end_ptr != value.data() + value.size() || value.empty()) {
    return Fail(400, "bad Content-Length");
  }
  // Two different lengths are how requests are smuggled past a proxy.
  if (facts.content_length && *facts.content_length != length) return Fail(400, "conflicting Content-Length");
  facts.content_length = length;
  return std::nullopt;
}

// One header field line, recorded in `request` and, when it matters, in `facts`. The failure
// to answer, or nullopt.
std::optional<HttpParse> ParseHeaderField(std::string_view field, bool http10, HttpRequest& request,
                                          HeaderFacts& facts) {
  const size_t colon = field.find(':');
  if (colon == std::string_view::npos) return Fail(400, "bad header line");
  const std::string_view name = field.substr(0, colon);
  const std::string_view value = TrimWhitespace(field.substr(colon + 1));
  // A space before the colon or a folded line (starting with whitespace) is refused.
  if (!IsToken(name) || !IsFieldValue(value)) return Fail(400, "bad header line");
  if (request.header_count == HttpRequest::kMaxHeaders) return Fail(431, "too many headers");
  request.headers[request.header_count++] = {name, value};

  if (EqualsIgnoreCase(name, "Content-Length")) return ReadContentLength(value, facts);
  if (EqualsIgnoreCase(name, "Transfer-Encoding")) {
    facts.has_transfer_encoding = true;
  } else if (EqualsIgnoreCase(name, "Host")) {
    ++facts.hosts;
  } else if (EqualsIgnoreCase(name, "Connection")) {
    // Several Connection headers are one list (RFC 9110 §5.3); "close" anywhere wins.
    facts.connection_close = facts.connection_close || ListContains(value, "close");
    facts.connection_keep_alive = facts.connection_keep_alive || ListContains(value, "keep-alive");
  } else if (EqualsIgnoreCase(name, "Expect")) {
    if (!EqualsIgnoreCase(value, "100-continue")) return Fail(417, "only Expect: 100-continue is understood");
    request.expects_continue = !http10;
  }
  return std::nullopt;
}

// Splits the first line (up to CRLF) off `text`.
std::string_view TakeLine(std::string_view& text) {
  const size_t end = text.find(kCrlf);
  const std::string_view line = text.substr(0, end);
  text = end == std::string_view::npos ? std::string_view{} : text.substr(end + 2);
  return line;
}

}  // namespace

HttpParse ParseHttpRequest(std::string_view buffer, const HttpLimits& limits) {
  // Empty lines before a request are ignored (RFC 9112 §2.2): some clients send a CRLF
  // after a body. They count toward the head's limit, so a client streaming nothing but empty
  // lines is refused at the limit instead of filling memory.
  size_t start = 0;
  while (buffer.substr(start, 2) == kCrlf) start += 2;
  const size_t head_end = buffer.find("\r\n\r\n", start);
  if (head_end == std::string_view::npos) {
    if (buffer.size() > limits.max_head_bytes) return Fail(431, "request head too large");
    return {};
  }
  if (head_end > limits.max_head_bytes) return Fail(431, "request head too large");

  HttpParse out;
  HttpRequest& request = out.request;
  std::string_view head = buffer.substr(start, head_end - start);
  bool http10 = false;
  if (auto failed = ParseRequestLine(TakeLine(head), request, &http10)) return *failed;
  HeaderFacts facts;
  while (!head.empty()) {
    if (auto failed = ParseHeaderField(TakeLine(head), http10, request, facts)) return *failed;
  }
  if (facts.has_transfer_encoding) return Fail(411, "send the body with Content-Length");
  // RFC 9112 §3.2: exactly one Host in HTTP/1.1, never two in any version.
  if (facts.hosts > 1) return Fail(400, "more than one Host header");
  if (facts.hosts == 0 && !http10) return Fail(400, "missing Host header");
  request.keep_alive = !facts.connection_close && (!http10 || facts.connection_keep_alive);

  const size_t body_length = facts.content_length.value_or(0);
  if (body_length > limits.max_body_bytes) return Fail(413, "body too large");
  out.head_complete = true;
  const size_t body_start = head_end + 4;
  if (buffer.size() - body_start < body_length) return out;  // kIncomplete, head in hand
  request.body = buffer.substr(body_start, body_length);
  out.consumed = body_start + body_length;
  out.status = HttpParse::Status::kComplete;
  return out;
}

std::optional<std::string> QueryParam(std::string_view query, std::string_view name) {
  while (!query.empty()) {
    const size_t amp = query.find('&');
    const std::string_view pair = query.substr(0, amp);
    const size_t eq = pair.find('=');
    if (FormDecode(pair.substr(0, eq)) == name) {
      return eq == std::string_view::npos ? std::string() : FormDecode(pair.substr(eq + 1));
    }
    if (amp == std::string_view::npos) break;
    query.remove_prefix(amp + 1);
  }
  return std::nullopt;
}

std::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 411:
      return "Length Required";
    case 413:
      return "Content Too Large";
    case 417:
      return "Expectation Failed";
    case 431:
      return "Request Header Fields Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    case 505:
      return "HTTP Version Not Supported";
    default:
      return "Unknown";
  }
}

void AppendHttpResponse(std::string& out, int status, std::string_view body, int retry_after_s, bool keep_alive,
                        std::string_view allow, std::string_view content_type) {
  char number[16];
  auto append_number = [&](long value) {
    const auto [end, ec] = std::to_chars(number, number + sizeof number, value);
    out.append(number, end);
  };
  out += "HTTP/1.1 ";
  append_number(status);
  out += ' ';
  out += ReasonPhrase(status);
  out += "\r\nContent-Type: ";
  out += content_type;
  out += "\r\nContent-Length: ";
  append_number(static_cast<long>(body.size()));
  if (retry_after_s > 0) {
    out += "\r\nRetry-After: ";
    append_number(retry_after_s);
  }
  if (!allow.empty()) {
    out += "\r\nAllow: ";
    out += allow;
  }
  out += keep_alive ? "\r\nConnection: keep-alive\r\n\r\n" : "\r\nConnection: close\r\n\r\n";
  out += body;
}

}  // namespace katy::ingress
