"""Who is an admin: a policy rule, `context_is_admin` (default `role:admin`), as in Glance.

Admins see every project's images (is_public=none, image-show, members).
An operator overrides the rule in a policy file ([oslo_policy] policy_file,
YAML), so a cloud's rule carries over from its glance policy. The file is
read once, at start: a broken one stops the service there, in one line.
"""

import contextlib
import logging

from oslo_policy import policy

from app.config import ConfigurationError

RULES = [
    policy.RuleDefault(
        name="context_is_admin",
        check_str="role:admin",
        description="Who may see every project's images and every image's members.",
    )
]


def enforcer(conf):
    """The policy enforcer of `conf`, its rules read now.

    :raises ConfigurationError: the policy file cannot be read or a rule understood.
    """
    enforcer = policy.Enforcer(conf)
    enforcer.register_defaults(RULES)
    with _complaints("oslo_policy._parser") as complaints:
        try:
            enforcer.load_rules()
        except (ValueError, OSError) as error:  # not YAML
            reason = f"is not valid: {' '.join(str(error).split())}"
            raise _broken(enforcer, conf, reason) from None
        except (AttributeError, TypeError):  # YAML, but not rule names to rules
            raise _broken(enforcer, conf, "is not a mapping of rule names to rules") from None
    if complaints:
        raise _broken(enforcer, conf, f"has a rule it cannot read: {complaints[0]}")
    try:
        enforcer.check_rules(raise_on_violation=True)
    except policy.InvalidDefinitionError:
        raise _broken(enforcer, conf, "refers to a rule it does not define") from None
    # No reading again at run time: a file broken later would deny everyone.
    enforcer.use_conf = False
    return enforcer


def is_admin(enforcer, project_id, roles):
    credentials = {"roles": sorted(roles), "project_id": project_id}
    return enforcer.enforce("context_is_admin", {}, credentials)


def _broken(enforcer, conf, reason):
    return ConfigurationError(
        f"the policy file {enforcer.policy_path or conf.oslo_policy.policy_file} {reason}"
    )


@contextlib.contextmanager
def _complaints(logger_name):
    """What oslo.policy's parser logs (it logs a rule it cannot read instead of raising)."""
    messages = []
    handler = logging.Handler(logging.WARNING)
    handler.emit = lambda record: messages.append(record.getMessage())
    logger = logging.getLogger(logger_name)
    propagate = logger.propagate
    logger.addHandler(handler)
    logger.propagate = False
    try:
        yield messages
    finally:
        logger.removeHandler(handler)
        logger.propagate = propagate
