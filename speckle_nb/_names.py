"""Names the kernel side and the Jupyter server side must agree on, each defined once.

The default Speckle server, the environment variables both sides read, the headers that name
the server process and carry the kernel key, and the hash the start URL carries instead of the pickup secret. A value
spelled twice drifts apart one day (``DEFAULT_SERVER_URL`` once had four definitions);
tests/test_names.py fails when one of these is spelled out anywhere else in ``speckle_nb``.

Imported at every kernel start: standard library only.
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Mapping

#: Where a sign-in or a token goes when nothing names a server (as in specklepy and the C# SDK).
DEFAULT_SERVER_URL = "https://app.speckle.systems"

# The Jupyter server's settings (``c.SpeckleNB.*`` falls back to these); the kernel reads the
# same ones for its own sign-in when there is no extension.
ENV_SERVER_URL = "SPECKLE_SERVER_URL"
ENV_APP_ID = "SPECKLE_APP_ID"
ENV_APP_SECRET = "SPECKLE_APP_SECRET"  # noqa: S105 (a variable name, not a secret)
ENV_REDIRECT_URL = "SPECKLE_REDIRECT_URL"
ENV_ALLOWED_SERVERS = "SPECKLE_ALLOWED_SERVERS"
#: A personal access token (specklepy reads the same name).
ENV_TOKEN = "SPECKLE_TOKEN"  # noqa: S105 (a variable name, not a token)
#: Published by the extension into its own environment once bound, so its kernels inherit them.
ENV_JUPYTER_URL = "SPECKLE_NB_JUPYTER_URL"
ENV_JUPYTER_PID = "SPECKLE_NB_JUPYTER_PID"
#: Where remembered credentials go (``remember``).
ENV_DATA_DIR = "SPECKLE_NB_DATA_DIR"
#: Speckle's own override of its account store's base folder (``local_accounts``).
ENV_USERDATA_PATH = "SPECKLE_USERDATA_PATH"

#: Sent with every JSON reply of the extension: the server process that answered. A kernel
#: that sees it change knows the server restarted and lost its sign-ins.
INSTANCE_HEADER = "X-Speckle-NB-Instance"
#: The extension's per-server key, which it puts in its own environment at start so that the
#: kernels it starts inherit it; ``pickup`` and ``refresh`` answer only requests carrying it
#: in ``KERNEL_KEY_HEADER`` (see ``docs/security.md``). Never logged, never in widget state.
KERNEL_KEY_ENV = "SPECKLE_NB_KERNEL_KEY"
KERNEL_KEY_HEADER = "X-Speckle-NB-Kernel-Key"
#: The reason word of the extension's 403 for a request without the kernel key.
NOT_A_KERNEL = "not-this-servers-kernel"


def env_text(name: str, environ: Mapping[str, str] | None = None) -> str:
    """The variable's value without surrounding blanks; ``""`` when unset or blank."""
    return (os.environ if environ is None else environ).get(name, "").strip()


def server_url_setting(environ: Mapping[str, str] | None = None) -> str:
    """``SPECKLE_SERVER_URL`` as set, else ``DEFAULT_SERVER_URL``.

    Not normalised: each reader reports a malformed value in its own terms.
    """
    return env_text(ENV_SERVER_URL, environ) or DEFAULT_SERVER_URL


def pickup_hash(secret: str) -> str:
    """What the start URL carries instead of the pickup secret: SHA-256, lowercase hex.

    The kernel computes it to build the URL, the server to match the kernel's pickup.
    """
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()
