"""Render the nginx site (app/serving/templates/nginx-*.conf.in) for production or loopback.

Production: HTTPS on 443 with the given certificate, plain HTTP redirected to
it, `server_name` only (any other Host gets no answer), /metrics for an
allow-list. Loopback (tests, bench): the same site over plain HTTP on one
address. Both share every proxying rule and limit.

    python -m app.serving.nginx_site --server-name images.example.com \\
        --certificate /etc/ssl/certs/images.pem --certificate-key /etc/ssl/private/images.key \\
        --upstream 127.0.0.1:8080 --upstream 127.0.0.1:8081 --metrics-allow 10.0.0.0/8 \\
        > /etc/nginx/sites-available/image-catalogue
"""

import argparse
import importlib.resources
from dataclasses import dataclass, field

TEMPLATES = importlib.resources.files(__package__) / "templates"


def fill(template, **values):
    """The template file `template` with each @NAME@ replaced by values[NAME]."""
    text = (TEMPLATES / template).read_text()
    for name, value in values.items():
        text = text.replace(f"@{name}@", value)
    return text


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
        targets = {"/metrics": "http://image_catalogue"}
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


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--server-name", required=True, help="the host name clients use")
    parser.add_argument("--certificate", required=True, help="PEM certificate (chain) path")
    parser.add_argument("--certificate-key", required=True, help="PEM private key path")
    parser.add_argument(
        "--upstream",
        action="append",
        required=True,
        help="a gunicorn instance, HOST:PORT (repeat for each)",
    )
    parser.add_argument(
        "--metrics-allow",
        action="append",
        default=["127.0.0.1"],
        help="an address or CIDR allowed to GET /metrics (repeatable; 127.0.0.1 always)",
    )
    parser.add_argument("--https-address", default="443", help="listen address for HTTPS")
    parser.add_argument("--http-address", default="80", help="listen address for the redirect")
    parser.add_argument("--access-log", default=Site.access_log, help="nginx access log path")
    options = parser.parse_args()
    print(
        Site(
            upstreams=options.upstream,
            server_name=options.server_name,
            certificate=options.certificate,
            certificate_key=options.certificate_key,
            https_address=options.https_address,
            http_address=options.http_address,
            metrics_allow=options.metrics_allow,
            access_log=options.access_log,
        ).render(),
        end="",
    )


if __name__ == "__main__":
    main()
