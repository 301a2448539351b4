"""The service layer under the routers: a router validates its input, calls one function of
these modules and formats the result.

``state`` holds what every request shares; ``datasets`` stores and checks uploads and decides
who sees which dataset; ``jobs``, ``models``, ``predictions``, ``retrieval`` and ``accounts``
do the work of their routers, with the ownership rules (members reach their own things, admins
everything; someone else's thing looks like a missing one).
"""

from taxonomist.api.services.state import (
    RESOLVE_TTL,
    ModelAccess,
    Principal,
    Services,
    TokenCache,
)

__all__ = ["RESOLVE_TTL", "ModelAccess", "Principal", "Services", "TokenCache"]
