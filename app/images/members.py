"""Who an image is shared with, and what is shared with a project (Glance v1's members API).

GET /v1/images/{id}/members, GET /v1/images/{id}/members/{member} and
GET /v1/shared-images/{member}: the bodies python-glanceclient's v1 member
manager reads. An image's owner and admins see all its members, a member
its own membership, anyone else who may see the image none; the image must
be one the caller may see, and not deleted (else 404, as in Glance). Each
answer has an ETag and is given again while nothing changed (app/web/answers.py).
"""

import functools

from flask import Blueprint, g
from werkzeug.exceptions import NotFound

from app.auth import authenticate
from app.images import bp, repository
from app.images.routes import json_text
from app.images.schemas import member_schema, shared_image_schema
from app.images.single import image_or_404
from app.web.answers import answer

shared_bp = Blueprint("shared_images", __name__)
shared_bp.before_request(authenticate)


@bp.get("/<image_id:image_id>/members")
def list_image_members(image_id):
    """List the members of an image the caller may see.

    :raises 404: no such image, one the caller may not see, or a deleted one.
    """

    def produce(reader, _):
        members = _members(reader, image_id)
        return json_text({"members": member_schema.dump(members, many=True)})

    return answer(("members", image_id), produce)


@bp.get("/<image_id:image_id>/members/<member>")
def show_image_member(image_id, member):
    """Show one member of an image, if the caller may see that membership.

    :raises 404: as for the list, or no such member (to this caller).
    """

    def produce(reader, _):
        found = _members(reader, image_id, member)
        if not found:
            raise NotFound(description=f"Project {member[:100]} is not a member of that image.")
        return json_text({"member": member_schema.dump(found[0])})

    return answer(("member", image_id, member), produce)


@shared_bp.get("/<member>")
def list_shared_images(member):
    """List the images shared with project `member` that the caller may know of.

    Admins: all of them. A project asking for itself: all of them. Anyone
    else: only its own images shared with that project (never 403, as in Glance).
    """

    def produce(reader, _):
        rows = repository.shared_images(reader, g.caller, member)
        return json_text({"shared_images": shared_image_schema.dump(rows, many=True)})

    return answer(("shared", member), produce)


def _members(reader, raw_id, member=None):
    """[Membership] of the image `raw_id` names (only `member`'s, if given).

    :raises 404: no such image, one the caller may not see, or a deleted one.
    """
    return image_or_404(reader, raw_id, functools.partial(repository.image_members, member=member))
