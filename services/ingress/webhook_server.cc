#include "services/ingress/webhook_server.h"

#include <pistache/endpoint.h>
#include <pistache/http.h>

#include "common/http/pistache_util.h"

namespace katy::ingress {
namespace {

using namespace Pistache;

class WebhookHandler : public Http::Handler {
 public:
  HTTP_PROTOTYPE(WebhookHandler)
  explicit WebhookHandler(const WebhookService* service) : service_(service) {}

  void onRequest(const Http::Request& request, Http::ResponseWriter response) override {
    const auto started = std::chrono::steady_clock::now();
    http::KeepAliveUnlessClosed(request, response);
    HttpReply reply;
    if (request.resource() != "/webhook") {
      reply = {404, "not found\n", 0};
    } else if (request.method() == Http::Method::Get) {
      const auto& query = request.query();
      reply = service_->HandleGet(query.get("hub.mode").value_or(""),
                                  query.get("hub.verify_token").value_or(""),
                                  query.get("hub.challenge").value_or(""));
    } else if (request.method() == Http::Method::Post) {
      reply = service_->HandlePost(request.body(), http::RawHeader(request, "X-Hub-Signature-256"),
                                   http::RawHeader(request, "X-Hub-Signature"));
    } else {
      reply = {405, "GET or POST only\n", 0};
    }
    if (reply.retry_after_s > 0) {
      response.headers().add<http::RetryAfterHeader>(std::to_string(reply.retry_after_s));
    }
    response.send(static_cast<Http::Code>(reply.status), reply.body);
    service_->RecordRequest(
        reply.status,
        std::chrono::duration<double>(std::chrono::steady_clock::now() - started).count());
  }

 private:
  const WebhookService* service_;
};

}  // namespace

Result<std::unique_ptr<WebhookServer>> WebhookServer::Start(const ServerOptions& options,
                                                            const WebhookService& service) {
  std::unique_ptr<WebhookServer> out(new WebhookServer());
  try {
    out->endpoint_ = std::make_shared<Http::Endpoint>(
        Address(options.address.host, Port(options.address.port)));
    out->endpoint_->init(Http::Endpoint::options()
                             .threads(options.threads)
                             .flags(Tcp::Options::ReuseAddr)
                             // Room for the request line and headers on top of the body limit.
                             .maxRequestSize(options.max_request_bytes + 16 * 1024)
                             .headerTimeout(options.read_timeout)
                             .bodyTimeout(options.read_timeout));
    out->endpoint_->setHandler(Http::make_handler<WebhookHandler>(&service));
    out->endpoint_->serveThreaded();
    out->port_ = static_cast<uint16_t>(out->endpoint_->getPort());
  } catch (const std::exception& e) {
    return Error{"io", "cannot serve HTTP on " + options.address.ToString() + ": " + e.what()};
  }
  return out;
}

WebhookServer::~WebhookServer() { Shutdown(); }

void WebhookServer::Shutdown() {
  if (endpoint_) {
    endpoint_->shutdown();
    endpoint_.reset();
  }
}

}  // namespace katy::ingress
