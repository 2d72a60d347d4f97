"""Render the nginx site (deploy/nginx/image-catalogue.conf.in) for production or for loopback.

Production: HTTPS on 443 with the given certificate, plain HTTP redirected to
it, `server_name` only (any other Host gets no answer), /metrics for an
allow-list. Loopback (tests, bench): the same site over plain HTTP on one
address. Both share every proxying rule and limit.

    python -m deploy.nginx --server-name images.example.com \\
        --certificate /etc/ssl/certs/images.pem --certificate-key /etc/ssl/private/images.key \\
        --upstream 127.0.0.1:8080 --upstream 127.0.0.1:8081 --metrics-allow 10.0.0.0/8 \\
        > /etc/nginx/sites-available/image-catalogue
"""

import argparse
from dataclasses import dataclass, field
from pathlib import Path

TEMPLATE = Path(__file__).resolve().parent / "nginx" / "image-catalogue.conf.in"


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
        values = {
            "DESCRIPTION": f"HTTPS for {self.server_name}" if https else "plain HTTP on loopback",
            "UPSTREAM_SERVERS": "\n".join(
                f"    server {upstream} max_fails=0;" for upstream in self.upstreams
            ),
            "EXTRA_SERVERS": self._redirect_and_default_servers() if https else "",
            "LISTEN": self._https_listen() if https else f"    listen {self.http_address};",
            "SERVER_NAME": self.server_name,
            "ACCESS_LOG": self.access_log,
            "METRICS_LOCATIONS": self._metrics_locations(),
        }
        text = TEMPLATE.read_text()
        for name, value in values.items():
            text = text.replace(f"@{name}@", value)
        return text

    def _metrics_locations(self):
        allow = "".join(f"        allow {source};\n" for source in self.metrics_allow)
        targets = {"/metrics": "http://image_catalogue"}
        for number, upstream in enumerate(self.upstreams, start=1):
            targets[f"/metrics/{number}"] = f"http://{upstream}/metrics"
        return "\n".join(
            f"    location = {path} {{\n{allow}"
            f"        deny all;\n        proxy_pass {target};\n    }}"
            for path, target in targets.items()
        )

    def _https_listen(self):
        return "\n".join(
            [
                f"    listen {self.https_address} ssl;",
                f"    ssl_certificate {self.certificate};",
                f"    ssl_certificate_key {self.certificate_key};",
                "    ssl_protocols TLSv1.2 TLSv1.3;",
                "    ssl_session_cache shared:image_catalogue_tls:10m;",
                '    add_header Strict-Transport-Security "max-age=31536000" always;',
            ]
        )

    def _redirect_and_default_servers(self):
        port = self.https_address.rsplit(":", 1)[-1]
        authority = self.server_name if port == "443" else f"{self.server_name}:{port}"
        return f"""
# Plain HTTP: clients are sent to HTTPS.
server {{
    listen {self.http_address};
    server_name {self.server_name};
    server_tokens off;
    access_log {self.access_log} image_catalogue if=$image_catalogue_failed;
    location / {{
        return 308 https://{authority}$request_uri;
    }}
}}

# Any other Host gets no answer (444 closes the connection), and TLS
# handshakes for any other name are refused.
server {{
    listen {self.http_address} default_server;
    listen {self.https_address} ssl default_server;
    ssl_reject_handshake on;
    access_log {self.access_log} image_catalogue;
    return 444;
}}
"""


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
