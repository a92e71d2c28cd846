"""The recommendation engine: pure modelling code, no Django imports.

`dataset.TrainingData` goes in, `precomputed.Precomputed` (the lists serving reads from the cache)
comes out of `training.train`; `evaluation` scores rankers on a temporal holdout. The Django side
(`recommendations.training_data`, `services`, `serving`) turns rows into these and back.
"""
