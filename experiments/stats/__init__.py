"""revopt's statistics engine: plain numpy/scipy, no Django, tested against scipy/statsmodels.

Inputs are sufficient statistics (`summaries`), never rows, so an analysis of millions of exposures
costs one aggregate query plus microseconds here.
"""
