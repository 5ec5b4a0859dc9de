"""The v9 contract around a network: what goes in (WAV2VEC frames, a mask) and what comes out.

Derived from the graph stored in the weights file (read as data), never assumed:
- one float input `[batch, frames, features]`, optionally with a boolean
  `[batch, frames]` length mask as a second input (the mask input is the one of
  dtype bool);
- one output `[batch, classes]`: a probability per label, in label order;
- `frames` may be fixed (inputs are padded or truncated to it) or None (padded to
  the longest utterance of each batch).
Anything else (several feature inputs, an integer input, several outputs) is
refused: it is not this family, and guessing would feed the network something
other than what it was trained on.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from modelreg.errors import InvalidArtifact

FLOAT_TYPES = ("float16", "float32", "float64", "bfloat16")


@dataclass(frozen=True)
class Contract:
    sequence_length: int | None
    feature_dim: int
    num_classes: int
    mask_input: bool

    def to_dict(self) -> dict:
        return asdict(self)


def contract_of(graph: Any, model: Any, source: str) -> Contract:
    """The contract of `graph` (a `KerasGraph`) as rebuilt into `model` (a Keras 3 model)."""
    inputs = graph.inputs
    features = [spec for spec in inputs if spec[2] in FLOAT_TYPES]
    masks = [spec for spec in inputs if spec[2] == "bool"]
    if len(features) != 1 or len(masks) > 1 or len(features) + len(masks) != len(inputs):
        raise InvalidArtifact(
            f"{source}: the v9 family feeds one float input [frames, features] and optionally one "
            f"boolean length mask, but this graph's inputs are "
            f"{[(name, list(shape), dtype) for name, shape, dtype in inputs]}. Ingest it with a "
            f"family that knows its inputs (--family files ships it without loading), or re-export it.")
    _name, shape, _dtype = features[0]
    if len(shape) != 3 or shape[2] is None:
        raise InvalidArtifact(f"{source}: the feature input has shape {list(shape)}; the v9 family "
                              f"needs [batch, frames, features] with a fixed feature width.")
    frames = shape[1]
    if masks:
        mask_shape = masks[0][1]
        if len(mask_shape) != 2 or mask_shape[1] != frames:
            raise InvalidArtifact(f"{source}: the mask input has shape {list(mask_shape)}; it must be "
                                  f"[batch, {frames}] to mark the real frames of the feature input.")
    outputs = list(model.outputs)
    out_shape = tuple(outputs[0].shape) if len(outputs) == 1 else ()
    if len(outputs) != 1 or len(out_shape) != 2 or out_shape[1] is None:
        raise InvalidArtifact(f"{source}: the v9 family needs one output [batch, classes]; this graph "
                              f"has {len(outputs)} output(s) of shape(s) "
                              f"{[list(o.shape) for o in outputs]}.")
    return Contract(sequence_length=frames, feature_dim=int(shape[2]), num_classes=int(out_shape[1]),
                    mask_input=bool(masks))


def feed_order(graph: Any) -> list[str]:
    """'features' / 'mask' in the order the graph takes its inputs."""
    return ["mask" if dtype == "bool" else "features" for _name, _shape, dtype in graph.inputs]
