"""TRL: a reward function for `GRPOTrainer(reward_funcs=[...])`.

TRL calls `await f(prompts=..., completions=..., completion_ids=..., trainer_state=...,
log_metric=..., log_extra=..., **dataset_columns)` and reads one float or None (abstain) per
completion. A process may hold only its slice of the step, so a prompt's group can be partial
here: run the service with `--group-size <num_generations>` to have the slices assembled.
"""
import inspect

from .client import FocalRewardClient, text_of


def trl_reward_func(url, rubric_scores, run=None, name="focal_reward", client=None, **client_options):
    """`rubric_scores(prompt, completion, **row) -> {criterion: score | None}` (sync or async)
    judges one completion; an exception marks it invalid (None to TRL, never 0)."""
    client = client or FocalRewardClient(url, run=run, **client_options)

    async def focal_reward(prompts, completions, completion_ids=None, trainer_state=None, log_metric=None, log_extra=None, **columns):
        columns.pop("environments", None)
        groups, where, invalid = {}, [], set()
        for i, (p, c) in enumerate(zip(prompts, completions)):
            row_columns = {k: v[i] for k, v in columns.items() if isinstance(v, list) and len(v) == len(prompts)}
            try:
                row = rubric_scores(p, c, **row_columns)
                if inspect.isawaitable(row):
                    row = await row
                row = {k: (None if v is None else float(v)) for k, v in dict(row).items()}
            except Exception:
                row, _ = {}, invalid.add(i)  # an empty row is invalid for the engine (spec step 8)
            key = text_of(p)
            groups.setdefault(key, []).append(row)
            where.append((key, len(groups[key]) - 1))
        step = getattr(trainer_state, "global_step", None)
        out = await client.ascore([{"id": k, "rows": rows} for k, rows in groups.items()], step=step)
        index = {g: j for j, g in enumerate(out["groups"])}
        starts, at = {}, 0
        for g, rows in groups.items():
            starts[g] = at
            at += len(rows)
        rewards = []
        for i, (g, r) in enumerate(where):
            j = starts[g] + r
            ok = i not in invalid and out["direct"][j] is not None
            rewards.append(out["rewards"][j] if ok else None)
        if log_metric is not None:
            for key, value in out.get("metrics", {}).items():
                if isinstance(value, (int, float)) and key.startswith("focal/") and (key.endswith("/weight") or key.endswith("/saturation")):
                    log_metric(key, float(value))
        if log_extra is not None:
            log_extra("focal_direct", [out["direct"][starts[g] + r] for g, r in where])
        del index
        return rewards

    focal_reward.__name__ = name
    return focal_reward
