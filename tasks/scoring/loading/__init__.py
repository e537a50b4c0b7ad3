"""Loading the scoring models (one module per model family), the device they run on, and the
per-process cache.

Every loader takes a ``ScoringModels`` block and caches what it builds under a key made of the
block fields that change the weights (plus the resolved device), so a worker loads ViT-L/14 once
however many cuts it scores. A model that cannot be had raises ONE ``ModelUnavailable`` naming
the model, the file or folder expected, and which block field or path provides it.
"""
