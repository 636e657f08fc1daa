"""The env server's network guards: where it may bind, and uvicorn's HTTP/1.1 protocol with the two
guards uvicorn lacks, a header-read timeout and a per-client connection cap.

Without them, connections that never finish their headers hold their slots forever: 300 such
connections made every request to `krill env serve` (health included) answer 503 for over a minute
(`limit_concurrency` counts them). Here a connection whose request headers have not arrived within
`header_timeout` seconds (counted from the connect, or from the end of the previous response) is
closed, and one remote client address may hold at most `max_per_client` connections (further ones
are closed at once), so one slow or hostile client cannot starve the others. Loopback addresses are
exempt from that cap: every local client shares 127.0.0.1, so a cap there let 40 stalled local
connections reset 57 of 60 health checks of another local client; stalled connections cost almost
nothing in asyncio, and the header timeout clears them. Request *bodies* have their own timeout in
the app (`server.BODY_TIMEOUT`).

`guarded_protocol()` builds the class `uvicorn.run(..., http=...)` takes. It hooks uvicorn's
`H11Protocol` at `connection_made`, `handle_events`, `on_response_complete` and `connection_lost`.
"""

from __future__ import annotations

import asyncio
import ipaddress
from collections import Counter

from uvicorn.protocols.http.h11_impl import H11Protocol

from krill.errors import KrillError

LOOPBACK_NAMES = ["127.0.0.1", "localhost", "::1"]
HEADER_TIMEOUT = 5.0  # seconds for a request's headers to arrive
MAX_PER_CLIENT = 32  # open connections per remote client address (loopback: no cap)
MAX_CONNECTIONS = 4096  # open connections in all (uvicorn's limit_concurrency); idle ones cost ~nothing


def guarded_protocol(header_timeout: float = HEADER_TIMEOUT, max_per_client: int = MAX_PER_CLIENT,
                     cap_loopback: bool = False) -> type:  # fmt: skip
    """An `H11Protocol` subclass with the two guards; each call has its own per-client counts
    (`cap_loopback`: count 127.0.0.1 too, which every local client shares)."""
    open_by_client: Counter[str] = Counter()

    class GuardedH11(H11Protocol):
        def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
            super().connection_made(transport)
            self._guard_timer: asyncio.TimerHandle | None = None
            self._guard_host = self.client[0] if self.client else "?"
            open_by_client[self._guard_host] += 1
            capped = cap_loopback or not is_loopback(self._guard_host)
            if capped and open_by_client[self._guard_host] > max_per_client:
                transport.close()  # over this client's share: the others keep theirs
                return
            self._arm()

        def handle_events(self) -> None:
            before = self.cycle
            super().handle_events()
            if self.cycle is not before:  # a request's headers arrived: the app takes it from here
                self._disarm()

        def on_response_complete(self) -> None:
            super().on_response_complete()
            if not self.transport.is_closing():
                self._arm()  # the next request's headers get the same time

        def connection_lost(self, exc: Exception | None) -> None:
            self._disarm()
            open_by_client[self._guard_host] -= 1
            if open_by_client[self._guard_host] <= 0:
                del open_by_client[self._guard_host]
            super().connection_lost(exc)

        def _arm(self) -> None:
            self._disarm()
            self._guard_timer = self.loop.call_later(header_timeout, self._headers_too_slow)

        def _disarm(self) -> None:
            if getattr(self, "_guard_timer", None) is not None:
                self._guard_timer.cancel()
                self._guard_timer = None

        def _headers_too_slow(self) -> None:
            self._guard_timer = None
            if (self.cycle is None or self.cycle.response_complete) and not self.transport.is_closing():
                self.logger.info("closing a connection whose request headers took over %gs", header_timeout)
                self.transport.close()

    return GuardedH11


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost; '0.0.0.0' and real addresses are not."""
    if host.strip().lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False  # a host name: it may resolve anywhere


def check_bind(host: str, token: str | None) -> None:
    """Refuse to expose an env beyond this machine without a token, and a blank token anywhere."""
    if token is not None and not token.strip():
        raise KrillError("the env server's token is blank: no request could authenticate", where="--token")
    if not is_loopback(host) and not token:
        raise KrillError(
            f"refusing to bind the env server to non-loopback host {host!r} without a token; "
            "pass --token or set $KRILL_ENV_TOKEN (or bind 127.0.0.1)"
        )
