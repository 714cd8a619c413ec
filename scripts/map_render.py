"""Run ``holoscan package`` (holoscan-cli 3.11) and keep what it renders.

Runs inside ``.map-venv`` (started by ``scripts/build_map.py``); arguments are those of
``holoscan package``. The packager writes the Dockerfile, ``map/app.json``,
``map/pkg.json`` and the build context into a temporary folder that it deletes when it
ends; this wrapper copies that folder to ``$SPINEVCF_MAP_RENDERED`` just before the
``docker buildx`` step. With ``SPINEVCF_MAP_BUILD=1`` the image is then built as usual;
otherwise the build is skipped, reported as not built, and ``render.json`` in the
rendered folder says why.
"""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

from holoscan_cli.__main__ import main as holoscan_main
from holoscan_cli.packager import container_builder
from holoscan_cli.packager.parameters import PlatformBuildResults

RENDERED = Path(os.environ["SPINEVCF_MAP_RENDERED"])
BUILD = os.environ.get("SPINEVCF_MAP_BUILD") == "1"
NOT_BUILT = "image not built: docker buildx is not usable here (rendered only)"

_original_build = container_builder.BuilderBase._build_internal


def _keep_and_build(self: Any, dockerfile: str, platform_parameters: Any) -> PlatformBuildResults:
    context = RENDERED / "context"
    if context.exists():
        shutil.rmtree(context)
    shutil.copytree(self._temp_dir, context, symlinks=True)
    marker = {"tag": platform_parameters.tag, "dockerfile": "context/Dockerfile", "built": BUILD}
    if BUILD:
        result = _original_build(self, dockerfile, platform_parameters)
        marker["built"] = bool(result.succeeded)
    else:
        result = PlatformBuildResults(platform_parameters)
        result.succeeded = False
        result.error = NOT_BUILT
        marker["reason"] = NOT_BUILT
    (RENDERED / "render.json").write_text(json.dumps(marker, indent=2) + "\n")
    return result


container_builder.BuilderBase._build_internal = _keep_and_build

if __name__ == "__main__":
    holoscan_main(["holoscan", "package", *sys.argv[1:]])
