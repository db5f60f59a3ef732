#include "common/grpc/service_server.h"

#include <grpcpp/health_check_service_interface.h>

namespace katy::grpcsvc {

Result<std::unique_ptr<ServiceServer>> ServiceServer::Start(const config::HostPort& address, grpc::Service* control,
                                                            const std::vector<grpc::Service*>& more,
                                                            const config::TlsFiles& tls) {
  grpc::EnableDefaultHealthCheckService(true);
  std::unique_ptr<ServiceServer> out(new ServiceServer());
  if (control == nullptr) {
    out->default_control_ = std::make_unique<katy::v1::Control::Service>();
    control = out->default_control_.get();
  }
  grpc::ServerBuilder builder;
  std::shared_ptr<grpc::ServerCredentials> credentials = grpc::InsecureServerCredentials();
  if (!tls.cert_pem.empty()) {
    grpc::SslServerCredentialsOptions options;
    options.pem_key_cert_pairs.push_back({tls.key_pem, tls.cert_pem});
    credentials = grpc::SslServerCredentials(options);
  }
  builder.AddListeningPort(address.ToString(), credentials, &out->port_);
  builder.RegisterService(control);
  for (grpc::Service* service : more) builder.RegisterService(service);
  out->server_ = builder.BuildAndStart();
  if (!out->server_ || out->port_ == 0) {
    return Error{ErrorCode::kIo, "cannot listen for gRPC on " + address.ToString()};
  }
  out->SetServing(false);
  if (auto* health = out->server_->GetHealthCheckService()) health->SetServingStatus(kLivenessService, true);
  return out;
}

ServiceServer::~ServiceServer() { Shutdown(); }

void ServiceServer::SetServing(bool serving) {
  if (!server_ || shut_down_) return;
  if (auto* health = server_->GetHealthCheckService()) {
    health->SetServingStatus("", serving);
  }
}

void ServiceServer::Shutdown(std::chrono::milliseconds deadline) {
  if (!server_ || shut_down_) return;
  shut_down_ = true;
  if (auto* health = server_->GetHealthCheckService()) health->SetServingStatus(false);
  server_->Shutdown(std::chrono::system_clock::now() + deadline);
  server_->Wait();
}

HealthMonitor::HealthMonitor(ServiceServer& server, std::function<bool()> healthy, std::chrono::milliseconds interval)
    : server_(server), healthy_(std::move(healthy)), interval_(interval), thread_([this] { Loop(); }) {}

HealthMonitor::~HealthMonitor() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  wake_.notify_all();
  thread_.join();
}

void HealthMonitor::Drain() {
  draining_ = true;
  server_.SetServing(false);
}

void HealthMonitor::Loop() {
  std::unique_lock lock(mutex_);
  while (!stop_) {
    lock.unlock();
    bool ok = healthy_();
    last_healthy_ = ok;
    if (!draining_) server_.SetServing(ok);
    lock.lock();
    wake_.wait_for(lock, interval_, [this] { return stop_; });
  }
}

}  // namespace katy::grpcsvc
