# Copyright 2026 The leo Authors. Licensed under the Apache License, Version 2.0.
"""leo's commands beside runner.py and predict.py, run from the checkout as `python -m tools.X`.

    tools/data/    making data and backbones: the bundled icons and glyphs image sets, a
                   pretrained backbone, embeddings of your own images
    tools/study/   studying results: tables and paired differences of records (compare), LEO
                   beside every baseline (helps), what meta-training changed (inspect_leo),
                   nearest centroid on an embeddings file (nearest_centroid)
    tools/tune.py  searching hyperparameters with Optuna
    tools/export.py  a trained LEO as a SavedModel that TensorFlow alone uses

Commands only: what they share lives in the libraries at the top of the checkout, and no
library imports a tool.
"""
