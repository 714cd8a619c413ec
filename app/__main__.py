"""Run the spinevcf application: ``python -m app -i INPUT_DIR -o OUTPUT_DIR [-m MODELS]``.

Exit status: 0 on success (also when no vertebra is found); the error's
``exit_code`` with a one-line message for an expected error (bad input, model or
Triton server, unwritable output).
"""

from __future__ import annotations

import gc
import sys

from app.app import SpineVCFApp
from spinevcf.errors import SpineVCFError


def main() -> int:
    """Run the application once; return the process exit status."""
    try:
        SpineVCFApp().run()
    except SpineVCFError as exc:
        sys.stderr.write(f"spinevcf: error: {exc}\n")
        return exc.exit_code
    finally:
        # The process ends here: keep the interpreter's shutdown from running the cyclic
        # garbage collector over every object still alive (the imported modules: MONAI
        # Deploy, Holoscan, ONNX Runtime, pydicom's dictionaries; highdicom's standard tables
        # of ~300 000 objects when it was still imported, about 0.2-0.4 s) (issue 15).
        # Objects are still finalised and files closed as usual; only cycles among them are
        # left to the operating system.
        gc.freeze()
    return 0


if __name__ == "__main__":
    sys.exit(main())
