"""Render the HAProxy configuration (app/serving/templates/haproxy*.cfg.in).

A whole haproxy.cfg: HTTPS on one address, in front of named gunicorn
instances checked by /healthcheck, every X-Forwarded-* header the service
believes set by HAProxy, /metrics and /readyz for an allow-list. `image-catalogue
haproxy-config` prints it (docs/operations.md, "HAProxy"); the drill runs it.
"""

from dataclasses import dataclass, field

from app.serving import fill

SERVER_CHECKS = "check inter 2s fall 3 rise 2"


@dataclass
class HAProxyConfig:
    bind: str
    certificate: str  # one PEM file: the certificate (chain), then its key
    server_name: str
    servers: dict  # name: HOST:PORT, in the order /metrics/N numbers them
    metrics_allow: list = field(default_factory=lambda: ["127.0.0.1"])
    log: str = "/dev/log local0"

    def render(self):
        numbered = list(enumerate(self.servers.items(), start=1))
        return fill(
            "haproxy.cfg.in",
            SERVER_NAME=self.server_name,
            LOG=self.log,
            BIND=self.bind,
            CERTIFICATE=self.certificate,
            METRICS_ALLOW=" ".join(self.metrics_allow),
            METRICS_ROUTES="\n".join(
                f"    use_backend image_catalogue_metrics_{number} if {{ path /metrics/{number} }}"
                for number, _ in numbered
            ),
            SERVERS="\n".join(
                f"    server {name} {address} {SERVER_CHECKS}"
                for name, address in self.servers.items()
            ),
            METRICS_BACKENDS="\n\n".join(
                fill(
                    "haproxy-metrics-backend.cfg.in", NUMBER=str(number), NAME=name, ADDRESS=address
                ).rstrip()
                for number, (name, address) in numbered
            ),
        )
