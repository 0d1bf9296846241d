from __future__ import annotations

import pytest

from service.ai import AIProviderError, ExtractedAsset, SimulatedProvider, extract_deterministically
from tests.unit.service.conftest import SCRIPT


def test_extraction_is_deterministic_and_ordered() -> None:
    assets = extract_deterministically(SCRIPT)
    assert assets == extract_deterministically(SCRIPT)
    assert assets[:3] == [ExtractedAsset("location", "Kitchen"), ExtractedAsset("character", "Alice"),
                          ExtractedAsset("prop", "kettle")]
    assert ExtractedAsset("character", "Cut To:") not in assets  # transitions are not speakers


def test_failure_rate_is_honoured() -> None:
    provider = SimulatedProvider("m", latency_ms=0, failure_rate=1.0)
    with pytest.raises(AIProviderError):
        provider.extract(SCRIPT)
    assert provider.extract(SCRIPT, failure_rate=0.0)
