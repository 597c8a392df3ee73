"""verl: reward functions for its reward managers and a `focal` advantage estimator.

- `compute_score(data_source, solution_str, ground_truth, extra_info=None, **kw)`: one sample,
  for the per-sample reward loop (`reward.custom_reward_function.path=.../verl.py`, name
  `compute_score`); `url`/`run` come from `custom_reward_function.reward_kwargs`.
- `compute_score_batch(data_sources, solution_strs, ground_truths, extra_infos, **kw)`: the batch
  reward manager's call (`reward_model.reward_manager=batch`), one request for the whole batch.
- `register_focal_adv_est(url, ...)`: registers `algorithm.adv_estimator=focal` when verl is
  importable; it reads per-criterion scores from `non_tensor_batch[key]` (keys from
  `algorithm.focal_reward_keys`, like GDPO's `gdpo_reward_keys`) and groups rows by `uid`.
"""
from .client import FocalRewardClient

_clients = {}


def _client(url, run):
    if not url:
        raise ValueError("focal_reward.verl: pass url=... (custom_reward_function.reward_kwargs.url)")
    c = _clients.get((url, run))
    if c is None:
        c = _clients[(url, run)] = FocalRewardClient(url, run=run)
    return c


def _reply(out, i):
    d = {"score": float(out["rewards"][i]), "focal_direct": float(out["scores"][i])}
    for k, v in out.get("extra_logs", {}).items():
        d[k] = float(v)
    return d


def compute_score(data_source, solution_str, ground_truth, extra_info=None, url=None, run=None, **_kw):
    prompt = (extra_info or {}).get("prompt", "") if isinstance(extra_info, dict) else ""
    out = _client(url, run).get_reward([prompt + solution_str], [prompt], [ground_truth])
    return _reply(out, 0)


def compute_score_batch(data_sources, solution_strs, ground_truths, extra_infos, url=None, run=None, **_kw):
    infos = [e if isinstance(e, dict) else {} for e in (extra_infos or [{}] * len(solution_strs))]
    prompts = [str(e.get("prompt", e.get("index", ""))) for e in infos]
    # Rows of one prompt must be consecutive for the service's grouping: order them by prompt.
    order = sorted(range(len(solution_strs)), key=lambda i: prompts[i])
    out = _client(url, run).get_reward([prompts[i] + solution_strs[i] for i in order], [prompts[i] for i in order],
                                       [ground_truths[i] for i in order])
    back = [None] * len(order)
    for j, i in enumerate(order):
        back[i] = _reply(out, j)
    return back


def focal_advantages(client, index, columns, step=None):
    """Advantages per row (python floats): rows grouped by `index` (verl's uid), per-criterion
    scores in `columns` ({criterion: sequence}, None/NaN = not judged)."""
    n = len(index)
    groups, where = {}, []
    for i in range(n):
        row = {}
        for k, col in columns.items():
            v = col[i]
            v = None if v is None else float(v)
            row[k] = None if v is None or v != v else v
        key = str(index[i])
        groups.setdefault(key, []).append(row)
        where.append((key, len(groups[key]) - 1))
    out = client.score([{"id": k, "rows": r} for k, r in groups.items()], step=step)
    starts, at = {}, 0
    for k, rows in groups.items():
        starts[k] = at
        at += len(rows)
    return [float(out["advantages"][starts[k] + r]) for k, r in where]


def register_focal_adv_est(url, run=None, keys=None, name="focal"):
    """Registers the estimator with verl's `register_adv_est`; returns False when verl is absent."""
    try:
        from verl.trainer.ppo.core_algos import register_adv_est
    except ImportError:
        return False
    client = FocalRewardClient(url, run=run)

    def compute_focal_outcome_advantage(token_level_rewards, response_mask, index=None, config=None, non_tensor_batch=None, **_kw):
        import torch  # verl brings it; only needed once verl calls this

        cfg = config or {}
        names = list(keys or cfg.get("focal_reward_keys") or cfg.get("gdpo_reward_keys") or [])
        if not names or non_tensor_batch is None:
            raise ValueError("focal advantage: set algorithm.focal_reward_keys and return those keys from compute_score")
        adv = focal_advantages(client, list(index), {k: list(non_tensor_batch[k]) for k in names})
        a = torch.tensor(adv, dtype=torch.float32, device=response_mask.device).unsqueeze(-1) * response_mask
        return a, a

    register_adv_est(name)(compute_focal_outcome_advantage)
    return True
