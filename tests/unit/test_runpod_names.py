"""RunPod GPU short names and the GraphQL literals the client writes."""

from __future__ import annotations

import pytest

from trainsh.cloud.runpod import GPU_SHORT_NAMES, UnknownGpu, _gql, gpu_type_id


def test_short_names_map_to_runpod_ids_in_any_case():
    assert gpu_type_id("L40") == "NVIDIA L40"
    assert gpu_type_id("h100s") == "NVIDIA H100 80GB HBM3"
    assert gpu_type_id("6000ada") == "NVIDIA RTX 6000 Ada Generation"
    assert gpu_type_id("nvidia a100-sxm4-80gb") == "NVIDIA A100-SXM4-80GB"
    assert gpu_type_id("NVIDIA GeForce RTX 3090") == "NVIDIA GeForce RTX 3090"  # an id outside the table
    assert len(GPU_SHORT_NAMES) == 14


def test_unknown_gpu_lists_the_known_names():
    with pytest.raises(UnknownGpu) as e:
        gpu_type_id("H1OO")
    assert "'H1OO'" in str(e.value) and "L40S" in str(e.value) and "RTX4090" in str(e.value)


def test_graphql_strings_are_escaped():
    # An env value with quotes, a backslash, a newline and a brace must stay one string literal.
    assert _gql('a "b" \\ c\n{d}') == '"a \\"b\\" \\\\ c\\n{d}"'
    assert _gql([{"key": "K", "value": "é"}]) == '[{key: "K", value: "é"}]'
