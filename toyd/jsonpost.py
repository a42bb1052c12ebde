"""One blocking JSON POST to an HTTP API, every failure turned into one clear error.

For small request/response calls made from an executor (a moderation API, a safety
judge), where a streaming client (:mod:`toyd.httpclient`) would be more than needed.
"""

from __future__ import annotations

import json
import socket
import urllib.error
import urllib.request
from typing import Any

from .errors import ToydError

MAX_BODY = 1 << 20


def post_json(
    url: str, payload: Any, api_key: str | None, timeout: float, error: type[ToydError] = ToydError
) -> bytes:
    """POST ``payload`` as JSON and return the raw body; network, timeout or HTTP errors raise ``error``."""
    headers = {"Content-Type": "application/json", "Accept": "application/json"}
    if api_key:
        headers["Authorization"] = f"Bearer {api_key}"
    body = json.dumps(payload, ensure_ascii=False).encode()
    request = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310 - configured URL
            return response.read(MAX_BODY)
    except urllib.error.HTTPError as exc:
        detail = exc.read(300).decode("utf-8", "replace").strip()
        raise error(f"{url}: HTTP {exc.code} {exc.reason}: {detail}") from None
    except TimeoutError:
        raise error(f"{url}: no answer within {timeout} s") from None
    except urllib.error.URLError as exc:
        if isinstance(exc.reason, (TimeoutError, socket.timeout)):
            raise error(f"{url}: no answer within {timeout} s") from None
        raise error(f"{url}: cannot connect: {exc.reason}") from None
    except OSError as exc:
        raise error(f"{url}: connection failed: {exc}") from None
