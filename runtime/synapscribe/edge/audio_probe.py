"""The validation Lambda's view of a lecture recording: format and duration from its header.

The reading itself lives in `synapscribe.audio` (one answer per format for the edge, AgentCore,
the generator and the smoke test); this module names what the edge uses of it.
"""

from __future__ import annotations

from synapscribe.audio.formats import SUPPORTED, sniff
from synapscribe.audio.probe import ProbeRejection, ProbeResult, SeekableReader, probe

__all__ = ["SUPPORTED", "ProbeRejection", "ProbeResult", "SeekableReader", "probe", "sniff"]
