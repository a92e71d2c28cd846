"""Writes of the recommendations app: model versions and training (`versions`, `training`), placement rules and served lists (`placements`)."""
