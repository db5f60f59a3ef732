#include "common/metrics/admin_server.h"

#include <pistache/endpoint.h>
#include <pistache/http.h>

#include "common/http/pistache_util.h"

namespace katy::metrics {
namespace {

using namespace Pistache;

// katy_serving: the health state /healthz and the gRPC health service report, as a gauge, so
// an alert can tell a service that is up but NOT_SERVING (Redis unreachable, draining).
class ServingCollector : public prometheus::Collectable {
 public:
  explicit ServingCollector(std::function<bool()> healthy) : healthy_(std::move(healthy)) {}

  std::vector<prometheus::MetricFamily> Collect() const override {
    prometheus::ClientMetric sample;
    sample.gauge.value = healthy_() ? 1.0 : 0.0;
    return {{"katy_serving",
             "1 while the service reports SERVING to health checks",
             prometheus::MetricType::Gauge,
             {sample}}};
  }

 private:
  std::function<bool()> healthy_;
};

class AdminHandler : public Http::Handler {
 public:
  HTTP_PROTOTYPE(AdminHandler)
  AdminHandler(Sources sources, std::function<bool()> healthy)
      : sources_(std::move(sources)),
        healthy_(healthy ? std::move(healthy) : std::function<bool()>([] { return true; })),
        serving_(std::make_shared<ServingCollector>(healthy_)) {
    sources_.push_back(serving_.get());
  }

  void onRequest(const Http::Request& request, Http::ResponseWriter response) override {
    http::KeepAliveUnlessClosed(request, response);
    if (request.method() != Http::Method::Get) {
      response.send(Http::Code::Method_Not_Allowed, "GET only\n");
    } else if (request.resource() == "/metrics") {
      response.headers().add<Http::Header::ContentType>(MIME(Text, Plain));
      response.send(Http::Code::Ok, Render(sources_));
    } else if (request.resource() == "/healthz") {
      const bool ok = healthy_();
      response.send(ok ? Http::Code::Ok : Http::Code::Service_Unavailable, ok ? "ok\n" : "unavailable\n");
    } else {
      response.send(Http::Code::Not_Found, "not found\n");
    }
  }

 private:
  Sources sources_;
  std::function<bool()> healthy_;
  // Shared by the copies Pistache makes of this handler, as sources_ points at it.
  std::shared_ptr<const ServingCollector> serving_;
};

}  // namespace

Result<std::unique_ptr<AdminServer>> AdminServer::Start(const config::HostPort& address, Sources sources,
                                                        std::function<bool()> healthy) {
  std::unique_ptr<AdminServer> out(new AdminServer());
  try {
    out->endpoint_ = std::make_shared<Http::Endpoint>(Address(address.host, Port(address.port)));
    out->endpoint_->init(Http::Endpoint::options().threads(1).flags(Tcp::Options::ReuseAddr));
    out->endpoint_->setHandler(Http::make_handler<AdminHandler>(std::move(sources), std::move(healthy)));
    out->endpoint_->serveThreaded();
    out->port_ = static_cast<uint16_t>(out->endpoint_->getPort());
  } catch (const std::exception& e) {
    return Error{ErrorCode::kIo, "cannot serve admin HTTP on " + address.ToString() + ": " + e.what()};
  }
  return out;
}

AdminServer::~AdminServer() { Shutdown(); }

void AdminServer::Shutdown() {
  if (endpoint_) {
    endpoint_->shutdown();
    endpoint_.reset();
  }
}

}  // namespace katy::metrics
