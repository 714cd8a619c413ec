"""Training of the two networks on the synthetic generator (``spinevcf train``)."""
