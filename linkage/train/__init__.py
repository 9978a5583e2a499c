"""Train: estimate the Splink model on restricted/people_std and register it (`linkage.train.stage.run`).

The model itself (settings, EM, registry) lives in `linkage.link`; this package is the stage.
"""
