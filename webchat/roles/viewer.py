"""`webchat view`: a shared room's page and API with no TCP side of its own.

It holds no peers; its sends are recorded in the room's stream, and the instances
that hold the peers write them (`room.shared`). For fanning one room out to many pages.
"""

from __future__ import annotations

from webchat.hub import Hub
from webchat.roles.base import RoleBase
from webchat.roles.peer import PeerOptions
from webchat.types import RoleName


class Viewer(RoleBase):
    kind: RoleName = "view"

    def __init__(self, hub: Hub, options: PeerOptions, room: str) -> None:
        super().__init__(hub, options)
        self._room = room

    @property
    def address(self) -> str:
        return f"room {self._room}"

    async def start(self) -> None:
        """Nothing to listen on or connect to: the room's other instances hold the peers."""

    async def stop(self) -> None:
        """Nothing of its own to close."""

    def _not_connected(self) -> str:
        return (
            f"no TCP peer in room {self._room}: peers connect to a webchat server of the room, "
            "not to a viewer"
        )
