"""Clients of the focal-reward service for RL trainers (standard library only).

Nothing here imports torch or a trainer at module load: the TRL, verl and slime adapters only
touch their trainer's objects when the trainer calls them.
"""
from .client import FocalRewardClient, FocalRewardError
from .trl import trl_reward_func
from .slime import focal_group_rm
from .verl import compute_score, compute_score_batch, register_focal_adv_est, focal_advantages

__all__ = [
    "FocalRewardClient", "FocalRewardError", "trl_reward_func", "focal_group_rm",
    "compute_score", "compute_score_batch", "register_focal_adv_est", "focal_advantages",
]
