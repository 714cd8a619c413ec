"""The spinevcf MONAI Deploy application (run it with ``python -m app``)."""
