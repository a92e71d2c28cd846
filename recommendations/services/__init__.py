"""Writes of the recommendations app.

`versions` and `training`: model versions and training runs; `placements`: placement rules and served lists.
"""
