"""HTTP client of the focal-reward service: urllib, retries with timeouts, async wrappers."""
import asyncio
import json
import time
import urllib.error
import urllib.parse
import urllib.request


class FocalRewardError(RuntimeError):
    """The service refused a request (4xx), or kept failing after every retry."""

    def __init__(self, message, status=None, problem=None):
        super().__init__(message)
        self.status = status
        self.problem = problem


# 502 (every rollout failed judging), 503 (busy, shutting down) and 429 are worth retrying.
_RETRY_STATUS = {429, 500, 502, 503, 504}


class FocalRewardClient:
    """`FocalRewardClient("http://127.0.0.1:8787", run="my-run")`.

    Each request is tried up to `retries` times with `timeout` seconds each; between tries it
    sleeps `backoff * 2**attempt` seconds (or the server's Retry-After).
    """

    def __init__(self, url, run=None, timeout=60.0, retries=5, backoff=0.5):
        self.url = url.rstrip("/")
        self.run = run
        self.timeout = timeout
        self.retries = max(1, int(retries))
        self.backoff = backoff

    # -- transport -------------------------------------------------------------------------
    def post(self, path, body, headers=None):
        data = json.dumps(body).encode()
        last = None
        for attempt in range(self.retries):
            req = urllib.request.Request(self.url + path, data=data, method="POST",
                                         headers={"content-type": "application/json", **(headers or {})})
            wait = self.backoff * (2 ** attempt)
            try:
                with urllib.request.urlopen(req, timeout=self.timeout) as resp:
                    return json.loads(resp.read().decode())
            except urllib.error.HTTPError as e:
                text = e.read().decode(errors="replace")
                try:
                    problem = json.loads(text)
                except ValueError:
                    problem = {"detail": text}
                last = FocalRewardError(f"{path}: {e.code} {problem.get('detail', text)}", e.code, problem)
                if e.code not in _RETRY_STATUS:
                    raise last
                retry_after = e.headers.get("retry-after")
                if retry_after and retry_after.isdigit():
                    wait = max(wait, float(retry_after))
            except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as e:
                last = FocalRewardError(f"{path}: {type(e).__name__}: {e}")
            if attempt + 1 < self.retries:
                time.sleep(wait)
        raise last

    async def apost(self, path, body, headers=None):
        return await asyncio.to_thread(self.post, path, body, headers)

    # -- endpoints -------------------------------------------------------------------------
    def _score_body(self, groups=None, *, step=None, criteria=None, scores=None, group_sizes=None, valid=None):
        body = {}
        if self.run is not None:
            body["run"] = self.run
        if step is not None:
            body["step"] = int(step)
        if groups is not None:
            if isinstance(groups, dict):
                groups = [{"id": str(k), "rows": list(v)} for k, v in groups.items()]
            body["groups"] = list(groups)
        else:
            body.update(criteria=list(criteria), scores=list(scores), groupSizes=list(group_sizes))
            if valid is not None:
                body["valid"] = [bool(v) for v in valid]
        return body

    def score(self, groups=None, *, step=None, criteria=None, scores=None, group_sizes=None, valid=None, idempotency_key=None):
        """POST /v1/score. Records: `groups=[{"id", "rows": [{criterion: score}]}]` or `{id: rows}`;
        columnar: `criteria=[...], scores=[n x criteria], group_sizes=[...], valid=[...]`."""
        body = self._score_body(groups, step=step, criteria=criteria, scores=scores, group_sizes=group_sizes, valid=valid)
        return self.post("/v1/score", body, {"idempotency-key": idempotency_key} if idempotency_key else None)

    async def ascore(self, *args, **kwargs):
        return await asyncio.to_thread(self.score, *args, **kwargs)

    def get_reward(self, query, prompts=None, labels=None, *, step=None, group_ids=None, idempotency_key=None):
        """POST /get_reward (OpenRLHF's shape): `{"query", "prompts", "labels"}` in, `{"rewards", "scores", "extra_logs"}` out."""
        body = {"query": list(query)}
        if prompts is not None:
            body["prompts"] = list(prompts)
        if labels is not None:
            body["labels"] = list(labels)
        if group_ids is not None:
            body["group_ids"] = [str(g) for g in group_ids]
        if step is not None:
            body["step"] = int(step)
        path = "/get_reward" + (f"?run={urllib.parse.quote(self.run)}" if self.run else "")
        return self.post(path, body, {"idempotency-key": idempotency_key} if idempotency_key else None)

    async def aget_reward(self, *args, **kwargs):
        return await asyncio.to_thread(self.get_reward, *args, **kwargs)


def text_of(x):
    """A prompt or completion as text: a string, or a chat (list of messages) as JSON."""
    if isinstance(x, str):
        return x
    return json.dumps(x, sort_keys=True, ensure_ascii=False)
