"""The media plane: aiortc peers with the server, packet forwarding, taps.

``peers.VisitMedia`` is the entry point; ``hooks`` is the only module that touches aiortc and
aioice internals.
"""

from server.media.hooks import set_host_addresses
from server.media.peers import MediaError, Role, Side, VisitMedia

__all__ = ["MediaError", "Role", "Side", "VisitMedia", "set_host_addresses"]
