"""Render the nginx site (app/serving/templates/nginx-*.conf.in) for production or loopback.

Production: HTTPS on 443 with the given certificate, plain HTTP redirected to
it, `server_name` only (any other Host gets no answer), /metrics for an
allow-list. Loopback (tests, bench): the same site over plain HTTP on one
address. Both share every proxying rule and limit. `image-catalogue
nginx-site` prints the production site (docs/operations.md, "nginx").
"""

from dataclasses import dataclass, field

from app.serving import fill


@dataclass
class Site:
    upstreams: list
    server_name: str = "_"
    # Production: HTTPS with these files; loopback: None.
    certificate: str | None = None
    certificate_key: str | None = None
    https_address: str = "443"
    http_address: str = "80"
    metrics_allow: list = field(default_factory=lambda: ["127.0.0.1"])
    access_log: str = "/var/log/nginx/image-catalogue.log"

    def render(self):
        https = self.certificate is not None
        return fill(
            "nginx-site.conf.in",
            DESCRIPTION=f"HTTPS for {self.server_name}" if https else "plain HTTP on loopback",
            UPSTREAM_SERVERS="\n".join(
                f"    server {upstream} max_fails=0;" for upstream in self.upstreams
            ),
            EXTRA_SERVERS=self._redirect_and_default_servers() if https else "",
            LISTEN=self._https_listen() if https else f"    listen {self.http_address};",
            SERVER_NAME=self.server_name,
            ACCESS_LOG=self.access_log,
            METRICS_LOCATIONS=self._metrics_locations(),
        )

    def _metrics_locations(self):
        allow = "".join(f"        allow {source};\n" for source in self.metrics_allow)
        targets = {"/metrics": "http://image_catalogue", "/readyz": "http://image_catalogue"}
        for number, upstream in enumerate(self.upstreams, start=1):
            targets[f"/metrics/{number}"] = f"http://{upstream}/metrics"
        return "\n".join(
            fill("nginx-metrics-location.conf.in", PATH=path, ALLOW=allow, TARGET=target).rstrip()
            for path, target in targets.items()
        )

    def _https_listen(self):
        return fill(
            "nginx-tls-listen.conf.in",
            HTTPS_ADDRESS=self.https_address,
            CERTIFICATE=self.certificate,
            CERTIFICATE_KEY=self.certificate_key,
        ).rstrip()

    def _redirect_and_default_servers(self):
        port = self.https_address.rsplit(":", 1)[-1]
        authority = self.server_name if port == "443" else f"{self.server_name}:{port}"
        return fill(
            "nginx-tls-servers.conf.in",
            HTTP_ADDRESS=self.http_address,
            HTTPS_ADDRESS=self.https_address,
            SERVER_NAME=self.server_name,
            ACCESS_LOG=self.access_log,
            AUTHORITY=authority,
        )
