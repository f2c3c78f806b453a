"""The environments' image channels: SSM parameters the launch templates resolve at each launch.

`promote` writes the channel and keeps the id it replaces in the channel's `previous` parameter;
`rollback` swaps them. Both are idempotent: promoting the image a channel already holds, or
rolling back to the image it already holds, changes nothing.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from synapscribe.platform import Channel

from synapscribe_ops.ami.errors import Exit, PipelineError


@dataclass(frozen=True)
class ChannelState:
    current: str | None
    previous: str | None


def read_parameter(ssm: Any, name: str) -> str | None:
    """The parameter's value, None when it does not exist; any other error propagates (an access
    denial must never pass for "not set")."""
    try:
        return str(ssm.get_parameter(Name=name)["Parameter"]["Value"])
    except ssm.exceptions.ParameterNotFound:
        return None


def state(ssm: Any, channel: Channel) -> ChannelState:
    return ChannelState(read_parameter(ssm, channel.current), read_parameter(ssm, channel.previous))


def _put(ssm: Any, name: str, image_id: str) -> None:
    # aws:ec2:image: SSM checks that the value is an image id the account can use.
    ssm.put_parameter(Name=name, Value=image_id, Type="String", DataType="aws:ec2:image", Overwrite=True)


def promote(ssm: Any, channel: Channel, image_id: str) -> ChannelState:
    """Point the channel at `image_id`, keeping what it held in `previous`; the state before."""
    before = state(ssm, channel)
    if before.current == image_id:
        return before
    if before.current is not None:
        _put(ssm, channel.previous, before.current)
    _put(ssm, channel.current, image_id)
    return before


def rollback(ssm: Any, channel: Channel) -> ChannelState:
    """Put the previous image back (and the current one in `previous`); the state before."""
    before = state(ssm, channel)
    if before.previous is None or before.previous == before.current:
        raise PipelineError(
            Exit.REFUSED,
            f"nothing to roll back to: {channel.previous} is "
            + ("not set" if before.previous is None else f"the current image {before.current}"),
        )
    _put(ssm, channel.current, before.previous)
    if before.current is not None:
        _put(ssm, channel.previous, before.current)
    return before
