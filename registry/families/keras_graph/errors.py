"""Errors raised when a stored Keras graph cannot be rebuilt exactly.

Both are `InvalidArtifact` (exit code 1): the file holds something modelreg
will not run, or is malformed. Each carries the file, layer, class and reason as
fields, and renders one paragraph: what was refused, in which file, at which
layer, and the ways out.
"""

from __future__ import annotations

from ...errors import InvalidArtifact


class UnsupportedGraph(InvalidArtifact):
    """The stored graph uses a layer, op, key or value outside the allowlist, or is malformed."""

    default_hint = (
        "Either re-export the model using only allowlisted layers and ops "
        "(see keras_graph.supported_layers() and supported_ops()), or install a modelreg "
        "family plugin that provides this layer (a trusted plugin hands it to "
        "build_model(custom_layers=...))."
    )

    def __init__(self, reason: str, *, file: str = "", layer: str = "", class_name: str = "",
                 hint: str | None = None) -> None:
        self.reason = reason
        self.file = file
        self.layer = layer
        self.class_name = class_name
        self.hint = self.default_hint if hint is None else hint
        where = f" in {file}" if file else ""
        at = f" at layer {layer!r}" if layer else ""
        if class_name:
            at += f" (class {class_name})"
        super().__init__(f"Cannot rebuild the Keras model{where}{at}: {reason}. {self.hint}")

    def located(self, file: str) -> UnsupportedGraph:
        """The same error naming `file`, unless it already names one."""
        if self.file:
            return self
        return type(self)(self.reason, file=file, layer=self.layer, class_name=self.class_name,
                          hint=self.hint)


class WeightMismatch(UnsupportedGraph):
    """The file's weights do not fit the rebuilt model one to one (leftover, missing, wrong shape)."""

    default_hint = ("The weights stored in a file must belong exactly to the graph stored with "
                    "them; re-save the model with model.save(...) rather than editing the file.")
