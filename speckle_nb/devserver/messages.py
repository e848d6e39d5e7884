"""The exact words a Speckle server answers with, and the exceptions that carry them.

Listed in the order of the protocol file's tables (§1.3, §2.2, §3.1, §3.2) so the two
can be read side by side.
"""

from __future__ import annotations

# §2.2, in table order.
MSG_NO_APP_ID = "Invalid request, insufficient information provided. App Id is required."
MSG_NO_APP_SECRET = "Invalid request, insufficient information provided. App Secret is required."
MSG_NO_ACCESS_CODE = "Invalid request, insufficient information provided. Access Code is required."
MSG_NO_CHALLENGE = "Invalid request, insufficient information provided. Challenge is required."
MSG_CODE_NOT_FOUND = "Access code not found."
MSG_CODE_WRONG_APP = "Invalid request: application id does not match."
MSG_CODE_EXPIRED = "Access code expired"
MSG_CHALLENGE_MISMATCH = (
    "Code challenge mismatch. Ensure the same challenge is used for authentication and token "
    "exchange."
)
MSG_INVALID_APP = "Invalid app"
MSG_BAD_APP_SECRET = "Invalid app secret. Ensure the app secret is correct."
# §3.1
MSG_NO_REFRESH_TOKEN = (
    "Invalid request, insufficient information provided. A valid refresh token is required."
)
MSG_INVALID_REQUEST = "Invalid request"
MSG_REFRESH_EXPIRED = "Refresh token expired"
MSG_INVALID_TOKEN = "Invalid token"
# The S256 endpoint is unreleased (§2.1): its wording follows the style of §2.2.
MSG_NO_VERIFIER = "Invalid request, insufficient information provided. Code Verifier is required."
MSG_VERIFIER_MISMATCH = (
    "Code verifier mismatch. Ensure the same verifier is used for authentication and token "
    "exchange."
)
# §1.3
MSG_AC_NO_APP_ID = "appId missing from querystring."
MSG_AC_NO_APP = "App does not exist."
MSG_AC_NO_CHALLENGE = "Missing challenge"
MSG_AC_NO_TOKEN = "Missing token"
MSG_AC_BAD_TOKEN = "Invalid token"
MSG_INTERNAL = "Something went wrong while processing your request"
# §3.2
MSG_LOGOUT_FAILED = "Something went wrong while trying to logout."


def missing_scope_message(scope: str) -> str:
    return f"Your auth token does not have the required scope: {scope}."


class DevStateError(Exception):
    """A refused request; ``message`` is what the real server says, word for word."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class TokenRequestError(DevStateError):
    """``POST /auth/token`` (and ``/oauth/token``) refusals: 401 ``{"err": message}``."""


class AccessCodeRequestError(DevStateError):
    """``GET /auth/accesscode`` refusals the server answers with 400 plain text."""


class InternalServerError(DevStateError):
    """What the server answers with a 500 (e.g. a challenge too long for its column)."""


class LogoutError(DevStateError):
    """``POST /auth/logout`` refusals: 400 plain text."""


class RegistrationError(DevStateError):
    """An app the real server could not store (its insert would fail)."""
