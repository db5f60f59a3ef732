#include "services/ingress/webhook_server.h"

#include <pistache/endpoint.h>
#include <pistache/http.h>

#include "common/http/pistache_util.h"

namespace katy::ingress {
namespace {

using namespace Pistache;

void Send(Http::ResponseWriter& response, const HttpReply& reply) {
  if (reply.retry_after_s > 0) {
    response.headers().add<http::RetryAfterHeader>(std::to_string(reply.retry_after_s));
  }
  response.send(static_cast<Http::Code>(reply.status), reply.body);
}

double SecondsSince(std::chrono::steady_clock::time_point start) {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
}

class WebhookHandler : public Http::Handler {
 public:
  HTTP_PROTOTYPE(WebhookHandler)
  WebhookHandler(const WebhookService* service, EnqueueBatcher* batcher)
      : service_(service), batcher_(batcher) {}

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
      auto checked = service_->CheckPost(request.body(), http::RawHeader(request, "X-Hub-Signature-256"),
                                         http::RawHeader(request, "X-Hub-Signature"));
      if (auto* events = std::get_if<std::vector<katy::v1::InboundEvent>>(&checked)) {
        // Answered later, from the batcher's thread (Pistache queues cross-thread writes).
        auto writer = std::make_shared<Http::ResponseWriter>(std::move(response));
        const WebhookService* service = service_;
        batcher_->Submit(std::move(*events), [service, writer, started](const auto& stored_events,
                                                                         const auto& stored) {
          HttpReply done = service->FinishPost(stored_events, stored);
          Send(*writer, done);
          service->RecordRequest(done.status, SecondsSince(started));
        });
        return;
      }
      reply = std::get<HttpReply>(checked);
    } else {
      reply = {405, "GET or POST only\n", 0};
    }
    Send(response, reply);
    service_->RecordRequest(reply.status, SecondsSince(started));
  }

 private:
  const WebhookService* service_;
  EnqueueBatcher* batcher_;
};

}  // namespace

Result<std::unique_ptr<WebhookServer>> WebhookServer::Start(const ServerOptions& options,
                                                            const WebhookService& service,
                                                            EnqueueBatcher& batcher) {
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
    out->endpoint_->setHandler(Http::make_handler<WebhookHandler>(&service, &batcher));
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
