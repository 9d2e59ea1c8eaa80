"""Layers, the three searched families (TVN, EvaNet, AssembleNet) and baselines.

Every model is described by a `ModelArch` (family + JSON genome) and built by its
family; see `vas_ros.models.registry`.
"""
