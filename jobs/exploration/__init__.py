"""Exploration and personalization of the homepage: bandits, propensities, off-policy evaluation.

Pure, typed, no Flink: the rows job and ``nextwatch eval`` call these.
"""
