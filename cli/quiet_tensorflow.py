"""TensorFlow's C++ start-up lines kept off the terminal of commands that use Keras.

TensorFlow 2.21 logs through absl before `absl::InitializeLog()` runs, so
`TF_CPP_MIN_LOG_LEVEL` no longer silences "oneDNN custom operations are on",
`cpu_feature_guard` and the absl banner: they go straight to file descriptor 2.
`import_tensorflow_quietly` imports TensorFlow and Keras with descriptor 2 pointed at a
temporary file, then writes back every line that is not such start-up noise, so an
import error or a real warning is still shown (after the import instead of during it).
"""

from __future__ import annotations

import os
import re
import sys
import tempfile

_NOISE = re.compile(r"absl::InitializeLog|oneDNN custom operations|cpu_feature_guard|"
                    r"^[IW]0000 \d\d:\d\d:\d\d\.\d+ +\d+ \S+\.cc:\d+\]")


def import_tensorflow_quietly() -> None:
    """Import tensorflow and keras now (once), dropping their C++ start-up lines from stderr."""
    if "tensorflow" in sys.modules:
        return
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            import keras  # noqa: F401  (imports tensorflow, its backend)
            import tensorflow  # noqa: F401
        except ImportError:
            pass  # the family that needs them says which package is missing, in its own words
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            kept = [line for line in capture.read().decode("utf-8", "replace").splitlines()
                    if line.strip() and not _NOISE.search(line)]
    for line in kept:
        sys.stderr.write(line + "\n")
