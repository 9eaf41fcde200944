#include "daemon/metrics_server.h"

#include <microhttpd.h>
#include <netdb.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/address.h"
#include "common/log.h"

namespace nichandover {
namespace daemon {
namespace {

// The content type of the text exposition format Prometheus asks for.
constexpr char kContentType[] = "text/plain; version=0.0.4; charset=utf-8";

MHD_Result Reply(MHD_Connection* connection, unsigned int code, const std::string& body,
                 const char* content_type) {
  MHD_Response* response = MHD_create_response_from_buffer(
      body.size(), const_cast<char*>(body.data()), MHD_RESPMEM_MUST_COPY);
  if (response == nullptr) return MHD_NO;
  MHD_add_response_header(response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
  if (code == MHD_HTTP_METHOD_NOT_ALLOWED) {
    MHD_add_response_header(response, MHD_HTTP_HEADER_ALLOW, "GET, HEAD");
  }
  MHD_Result result = MHD_queue_response(connection, code, response);
  MHD_destroy_response(response);
  return result;
}

MHD_Result Handle(void* cls, MHD_Connection* connection, const char* url, const char* method,
                  const char* /*version*/, const char* /*upload_data*/,
                  size_t* upload_data_size, void** /*con_cls*/) {
  auto* metrics = static_cast<Metrics*>(cls);
  const std::string m = method;
  if (m != MHD_HTTP_METHOD_GET && m != MHD_HTTP_METHOD_HEAD) {
    // Swallow a request body before answering.
    if (*upload_data_size != 0) {
      *upload_data_size = 0;
      return MHD_YES;
    }
    return Reply(connection, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET /metrics is served\n",
                 "text/plain; charset=utf-8");
  }
  if (std::string(url) != "/metrics") {
    return Reply(connection, MHD_HTTP_NOT_FOUND, "not found; metrics are at /metrics\n",
                 "text/plain; charset=utf-8");
  }
  return Reply(connection, MHD_HTTP_OK, metrics->Render(), kContentType);
}

// A listening TCP socket on `addr`; its bound port in *port.
absl::StatusOr<int> Listen(const Address& addr, int* port) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
  addrinfo* found = nullptr;
  const std::string service = std::to_string(addr.port);
  int rc = ::getaddrinfo(addr.host.c_str(), service.c_str(), &hints, &found);
  if (rc != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("metrics_listen: cannot resolve ", addr.host, ": ", gai_strerror(rc)));
  }
  std::string error = "no address";
  int fd = -1;
  for (addrinfo* ai = found; ai != nullptr && fd < 0; ai = ai->ai_next) {
    fd = ::socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC, ai->ai_protocol);
    if (fd < 0) {
      error = std::strerror(errno);
      continue;
    }
    int one = 1;
    ::setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (::bind(fd, ai->ai_addr, ai->ai_addrlen) != 0 || ::listen(fd, 16) != 0) {
      error = std::strerror(errno);
      ::close(fd);
      fd = -1;
    }
  }
  ::freeaddrinfo(found);
  if (fd < 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot serve metrics on ", addr.ToString(), ": ", error));
  }
  sockaddr_storage bound{};
  socklen_t len = sizeof(bound);
  ::getsockname(fd, reinterpret_cast<sockaddr*>(&bound), &len);
  *port = ntohs(bound.ss_family == AF_INET6 ? reinterpret_cast<sockaddr_in6*>(&bound)->sin6_port
                                            : reinterpret_cast<sockaddr_in*>(&bound)->sin_port);
  return fd;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MetricsServer>> MetricsServer::Start(Options options) {
  auto addr = ParseAddress(options.listen);
  if (!addr.ok()) return addr.status();
  if (addr->kind != Address::Kind::kTcp) {
    return absl::InvalidArgumentError("metrics_listen: must be host:port");
  }
  std::unique_ptr<MetricsServer> server(new MetricsServer(std::move(options)));
  int port = 0;
  auto fd = Listen(*addr, &port);
  if (!fd.ok()) return fd.status();
  addr->port = port;
  server->address_ = addr->ToString();
  server->httpd_ = MHD_start_daemon(
      MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_ERROR_LOG, 0, nullptr, nullptr, &Handle,
      server->options_.metrics, MHD_OPTION_LISTEN_SOCKET, *fd, MHD_OPTION_CONNECTION_TIMEOUT,
      static_cast<unsigned int>(30), MHD_OPTION_CONNECTION_LIMIT, static_cast<unsigned int>(32),
      MHD_OPTION_END);
  if (server->httpd_ == nullptr) {
    ::close(*fd);
    return absl::UnavailableError(
        absl::StrCat("libmicrohttpd could not serve metrics on ", server->address_));
  }
  if (server->options_.peers != nullptr && !server->options_.peer_ids.empty()) {
    server->prober_ = std::thread([s = server.get()] { s->ProbeLoop(); });
  }
  return server;
}

MetricsServer::~MetricsServer() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
    stop_cv_.notify_all();
  }
  if (prober_.joinable()) prober_.join();
  if (httpd_ != nullptr) MHD_stop_daemon(httpd_);  // also closes the listening socket
}

void MetricsServer::ProbeLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stop_) {
    lock.unlock();
    for (const auto& peer : options_.peer_ids) {
      auto hello = options_.peers->Hello(peer, options_.probe_timeout);
      options_.metrics->PeerReached(peer, hello.status());
    }
    lock.lock();
    stop_cv_.wait_for(lock, absl::ToChronoNanoseconds(options_.probe_every),
                      [this] { return stop_; });
  }
}

}  // namespace daemon
}  // namespace nichandover
