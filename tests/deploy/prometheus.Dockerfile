# A stand-in for prom/prometheus:v2.42.0 (Debian 12 packages Prometheus 2.42.0), for a machine
# that cannot pull it: same entrypoint, user and data folder as the official image. Built by
# scripts/podman-docker.sh only when the official image is missing.
FROM debian:bookworm-slim
RUN apt-get update -qq \
 && apt-get install -y -qq --no-install-recommends prometheus \
 && rm -rf /var/lib/apt/lists/* \
 && mkdir -p /prometheus /etc/prometheus && chown nobody:nogroup /prometheus
WORKDIR /prometheus
USER nobody
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
