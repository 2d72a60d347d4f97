"""The service's real processes for tests, on loopback ports the kernel picks."""

import trustme

from deploy.stack import Gunicorn


def start_service(database_url, port=0, **environment):
    """gunicorn with the shipped config and two workers, returned once /healthz answers."""
    server = Gunicorn(
        {
            "DATABASE_URL": database_url,
            "WEB_CONCURRENCY": "2",
            "LOG_LEVEL": "WARNING",
            **environment,
        },
        port=port,
    )
    try:
        return server.wait_until_serving()
    except BaseException:
        server.stop()
        raise


def tls_files(folder, server_name="localhost"):
    """A CA and a certificate for `server_name` it signed: (server_name, cert, key, ca) paths."""
    authority = trustme.CA()
    issued = authority.issue_cert(server_name)
    certificate, key, ca = (folder / name for name in ("server.crt", "server.key", "ca.crt"))
    certificate.write_bytes(b"".join(pem.bytes() for pem in issued.cert_chain_pems))
    issued.private_key_pem.write_to_path(str(key))
    authority.cert_pem.write_to_path(str(ca))
    return server_name, str(certificate), str(key), str(ca)
