"""The spinevcf MONAI Deploy application (run it with ``python -m app``)."""

from operators._sdk import import_sdk

import_sdk()  # the SDK without PyTorch, before app.settings / app.app import it
