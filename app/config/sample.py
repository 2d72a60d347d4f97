"""The sample configuration file, as oslo-config-generator writes it (make sample-config).

Its namespaces: the service's options (setup.cfg's oslo.config.opts entry
point), keystonemiddleware's [keystone_authtoken] and oslo.policy's
[oslo_policy], the ones Glance's sample has. tests/test_configuration.py
fails when the committed file drifts from the declarations.
"""

import io
import pathlib

from oslo_config import cfg, generator

SAMPLE = pathlib.Path(__file__).with_name("image-catalogue.conf.sample")
NAMESPACES = ["image_catalogue", "keystonemiddleware.auth_token", "oslo.policy"]


def generate():
    """The sample's text."""
    conf = cfg.ConfigOpts()
    generator.register_cli_opts(conf)
    arguments = [argument for name in NAMESPACES for argument in ("--namespace", name)]
    conf(args=[*arguments, "--wrap-width", "79"], use_env=False, default_config_files=[])
    text = io.StringIO()
    generator.generate(conf, output_file=text)
    return text.getvalue()


if __name__ == "__main__":
    print(generate(), end="")
