"""slime: `--group-rm --custom-rm-path focal_reward.slime.focal_group_rm` (with `--rm-url URL`).

slime calls `await focal_group_rm(args, samples)` with the samples of one prompt's group and
reads one reward per sample. The rollout's text is judged by the service's judge (`/get_reward`).
"""
from .client import FocalRewardClient, text_of

_clients = {}


async def focal_group_rm(args, samples, **_kwargs):
    url = args.rm_url
    base = url.split("/get_reward")[0]
    run = getattr(args, "focal_run", None)
    client = _clients.get((base, run))
    if client is None:
        client = _clients[(base, run)] = FocalRewardClient(base, run=run, timeout=120, retries=10)
    prompts = [text_of(s.prompt) for s in samples]
    queries = [p + (s.response or "") for p, s in zip(prompts, samples)]
    labels = [s.label for s in samples]
    out = await client.aget_reward(queries, prompts, labels)
    return [float(r) for r in out["rewards"]]
