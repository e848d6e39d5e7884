"""``POST {hub}/hub/api/speckle-nb/users/<name>/renew``: renew a user's Speckle token now.

JupyterHub renews ``auth_state`` by itself only once ``auth_refresh_age`` has passed. A kernel
whose token Speckle has just refused asks for a renewal at once (with its own hub token, which
holds ``admin:auth_state!user``), then reads the fresh token from ``auth_state``. A refresh
Speckle refuses answers 409 with words the kernel shows.
"""

from __future__ import annotations

import json
import time
from typing import Any

from jupyterhub.apihandlers.base import APIHandler
from jupyterhub.scopes import needs_scope
from tornado import web

__all__ = ["RenewHandler"]

REFUSED = (
    "Speckle refused to renew your sign-in (the app's access was revoked, or the refresh token "
    "expired)."
)


class RenewHandler(APIHandler):  # type: ignore[misc]
    @needs_scope("admin:auth_state")  # type: ignore[untyped-decorator]
    async def post(self, user_name: str) -> None:
        user: Any = self.find_user(user_name)
        if user is None:
            raise web.HTTPError(404)
        info = await self.authenticator.refresh_user(user, self)
        self.set_header("Content-Type", "application/json")
        if not info:
            # Make the hub check this login again on the person's next page (JupyterHub skips
            # the check until auth_refresh_age has passed since the last good one): the
            # browser then goes to the login page, which says why.
            user._auth_refreshed = 0
            self.set_status(409)
            self.finish(json.dumps({"renewed": False, "message": REFUSED}))
            return
        if isinstance(info, dict):
            await self.auth_to_user(info, user)
        user._auth_refreshed = time.monotonic()
        self.finish(json.dumps({"renewed": True}))
