"""The adapters against the real server (`node dist/cli/main.js serve`, built by `npm test`),
called with the argument shapes their trainers pass."""
import asyncio
import http.server
import json
import math
import os
import random
import subprocess
import sys
import tempfile
import threading
import time
import types
import unittest

from focal_reward import FocalRewardClient, FocalRewardError, compute_score, compute_score_batch, focal_advantages, focal_group_rm, register_focal_adv_est, trl_reward_func

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
RUBRIC = {"criteria": [{"id": "accuracy", "weight": 2}, {"id": "format"}, {"id": "depth"}]}


def start_server(*args):
    d = tempfile.mkdtemp(prefix="focal-py-")
    rubric = os.path.join(d, "rubric.json")
    with open(rubric, "w") as f:
        json.dump(RUBRIC, f)
    proc = subprocess.Popen(["node", os.path.join(ROOT, "dist", "cli", "main.js"), "serve", "--rubric", rubric, "--port", "0", *args],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    line = proc.stdout.readline()
    if "listening on" not in line:
        proc.kill()
        raise RuntimeError(f"server did not start: {line} {proc.stderr.read()}")
    return proc, line.split("listening on ")[1].split(" ")[0]


def label(a, f, d):
    return json.dumps({"accuracy": a, "format": f, "depth": d})


class GroupScope(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.proc, cls.url = start_server("--scope", "group")

    @classmethod
    def tearDownClass(cls):
        cls.proc.terminate()
        cls.proc.wait(10)
        cls.proc.stdout.close()
        cls.proc.stderr.close()

    def test_score_records_and_columnar_agree(self):
        c = FocalRewardClient(self.url, run="py")
        rows = [{"accuracy": 0.9, "format": 1, "depth": 0.1}, {"accuracy": 0.2, "format": 1, "depth": 0.5}, {"accuracy": 0.6, "format": None, "depth": 0.3}]
        a = c.score([{"id": "p", "rows": rows}])
        b = c.score({"p": rows})
        col = c.score(criteria=["accuracy", "format", "depth"], scores=[v for r in rows for v in (r["accuracy"], r["format"], r["depth"])], group_sizes=[3])
        self.assertEqual(a["rewards"], b["rewards"])
        self.assertEqual(a["rewards"], col["rewards"])
        self.assertEqual(len(a["rewards"]), 3)

    def test_openrlhf_one_sample_per_request_concurrent_shuffled(self):
        # OpenRLHF's SingleTurnAgentExecutor: {"query": [q], "prompts": [p], "labels": [l]} per sample, concurrently.
        rng = random.Random(7)
        samples = [(f"prompt {p}", f"prompt {p} answer {s}", label(rng.random(), rng.random(), rng.random())) for p in range(4) for s in range(4)]
        rng.shuffle(samples)
        c = FocalRewardClient(self.url, run="orl")

        async def main():
            return await asyncio.gather(*[c.aget_reward([q], [p], [l]) for p, q, l in samples])

        outs = asyncio.run(main())
        for out in outs:
            self.assertEqual(len(out["rewards"]), 1)
            self.assertTrue(math.isfinite(out["rewards"][0]))
            for k, v in out["extra_logs"].items():
                self.assertIsInstance(v, (int, float), k)
                self.assertTrue(math.isfinite(v), k)
        # The other servers of a sharded sample get {"query": []}.
        self.assertEqual(c.get_reward([], [], []), {"rewards": [], "scores": [], "extra_logs": {}})

    def test_openrlhf_all_failed_is_502_with_the_reason(self):
        c = FocalRewardClient(self.url, run="orl", retries=2, backoff=0.01)
        with self.assertRaises(FocalRewardError) as ctx:
            c.get_reward(["p 4"], ["p"], ["4"])
        self.assertEqual(ctx.exception.status, 502)
        self.assertIn('the label must be a JSON object {criterion: score}; got "4"', str(ctx.exception))

    def test_trl_partial_groups_across_two_processes(self):
        def judge(prompt, completion, **row):
            if completion == "broken":
                raise ValueError("judge failed")
            return row["scores"]  # the dataset column "scores", one dict per completion

        metrics = []
        f = trl_reward_func(self.url, rubric_scores=judge, run="trl")
        self.assertEqual(f.__name__, "focal_reward")
        state = types.SimpleNamespace(global_step=3)
        # Process 0 holds samples 0-1 of each prompt, process 1 samples 2-3 (completions are split).
        full = {"p": [{"accuracy": 0.9, "format": 1, "depth": 0.1}, {"accuracy": 0.1, "format": 0, "depth": 0.9},
                      {"accuracy": 0.5, "format": 1, "depth": 0.5}, {"accuracy": 0.7, "format": 0, "depth": 0.2}]}
        outs = []
        for part in (slice(0, 2), slice(2, 4)):
            rows = full["p"][part]
            comps = ["ok"] * len(rows)
            if part.start == 2:
                comps[1] = "broken"
            outs.append(asyncio.run(f(prompts=["p"] * len(rows), completions=comps, completion_ids=[[1]] * len(rows), trainer_state=state,
                                      log_metric=lambda k, v: metrics.append((k, v)), log_extra=lambda k, v: None, scores=rows)))
        self.assertEqual(len(outs[0]), 2)
        self.assertTrue(all(isinstance(x, float) for x in outs[0]))
        self.assertIsInstance(outs[1][0], float)
        self.assertIsNone(outs[1][1])  # judged invalid: abstain, never 0
        self.assertTrue(any(k == "focal/accuracy/weight" for k, _ in metrics))

    def test_slime_group_rm(self):
        args = types.SimpleNamespace(rm_url=self.url + "/get_reward")
        mk = lambda r, l: types.SimpleNamespace(prompt="Q", response=r, label=l, group_index=0, rollout_id=1)
        samples = [mk(" a", label(1, 1, 0)), mk(" b", label(0, 1, 1)), mk(" c", label(0.5, 0, 0.5))]
        rewards = asyncio.run(focal_group_rm(args, samples))
        direct = FocalRewardClient(self.url).score({"Q": [json.loads(s.label) for s in samples]})
        self.assertEqual(rewards, direct["rewards"])

    def test_verl_compute_score_batch_and_advantages(self):
        one = compute_score("rubric", " answer", label(1, 1, 0), {"prompt": "Q"}, url=self.url, run="verl")
        self.assertIsInstance(one["score"], float)
        self.assertTrue(all(isinstance(v, float) for v in one.values()))
        infos = [{"prompt": "A"}, {"prompt": "B"}, {"prompt": "A"}, {"prompt": "B"}]
        gts = [label(1, 1, 0), label(0, 0, 1), label(0, 1, 0), label(1, 0, 1)]
        batch = compute_score_batch(["r"] * 4, [" x", " y", " z", " w"], gts, infos, url=self.url)
        by_prompt = FocalRewardClient(self.url).score({"A": [json.loads(gts[0]), json.loads(gts[2])], "B": [json.loads(gts[1]), json.loads(gts[3])]})
        self.assertEqual([b["score"] for b in batch], [by_prompt["rewards"][i] for i in (0, 2, 1, 3)])
        adv = focal_advantages(FocalRewardClient(self.url), ["u1", "u2", "u1", "u2"],
                               {"accuracy": [1, 0, 0, 1], "format": [1, 0, 1, 0], "depth": [0, 1, float("nan"), 1]})
        grouped = FocalRewardClient(self.url).score({"u1": [{"accuracy": 1, "format": 1, "depth": 0}, {"accuracy": 0, "format": 1, "depth": None}],
                                                     "u2": [{"accuracy": 0, "format": 0, "depth": 1}, {"accuracy": 1, "format": 0, "depth": 1}]})
        self.assertEqual(adv, [grouped["advantages"][i] for i in (0, 2, 1, 3)])
        self.assertNotEqual(adv[0], 0.0)

    def test_register_focal_adv_est_only_with_verl(self):
        self.assertFalse(register_focal_adv_est(self.url))  # verl absent: nothing registered, no import error
        registry = {}
        core = types.ModuleType("verl.trainer.ppo.core_algos")
        core.register_adv_est = lambda name: (lambda fn: registry.setdefault(name, fn))
        mods = {"verl": types.ModuleType("verl"), "verl.trainer": types.ModuleType("verl.trainer"),
                "verl.trainer.ppo": types.ModuleType("verl.trainer.ppo"), "verl.trainer.ppo.core_algos": core}
        sys.modules.update(mods)
        try:
            self.assertTrue(register_focal_adv_est(self.url, keys=["accuracy"]))
            self.assertIn("focal", registry)
        finally:
            for m in mods:
                sys.modules.pop(m, None)


class GroupAssembly(unittest.TestCase):
    """`serve --group-size 4`: OpenRLHF's one sample a request, sent concurrently and shuffled, is
    scored in groups of four, exactly as the same rows sent as whole groups to a plain server."""

    @classmethod
    def setUpClass(cls):
        cls.proc, cls.url = start_server("--scope", "group", "--group-size", "4", "--group-wait", "120000")
        cls.plain, cls.plain_url = start_server("--scope", "group")

    @classmethod
    def tearDownClass(cls):
        for p in (cls.proc, cls.plain):
            p.terminate()
            p.wait(10)
            p.stdout.close()
            p.stderr.close()

    def test_openrlhf_one_sample_per_request_against_group_size(self):
        rng = random.Random(11)
        samples = [(f"prompt {p}", f"prompt {p} answer {s}", label(rng.random(), rng.random(), rng.random())) for p in range(4) for s in range(4)]
        whole = FocalRewardClient(self.plain_url, run="whole").get_reward([q for _, q, _ in samples], [p for p, _, _ in samples], [l for _, _, l in samples])
        expected = {q: r for (_, q, _), r in zip(samples, whole["rewards"])}
        shuffled = samples[:]
        rng.shuffle(shuffled)
        c = FocalRewardClient(self.url, run="orl")
        # One thread per request, as OpenRLHF's engine actors each wait on their own sample (a
        # small pool could hold only partial groups and wait for their timeout).
        from concurrent.futures import ThreadPoolExecutor
        with ThreadPoolExecutor(max_workers=len(shuffled)) as pool:
            outs = list(pool.map(lambda s: c.get_reward([s[1]], [s[0]], [s[2]]), shuffled))
        for (_, q, _), out in zip(shuffled, outs):
            self.assertEqual(len(out["rewards"]), 1)
            self.assertAlmostEqual(out["rewards"][0], expected[q], delta=1e-6)
            self.assertEqual(out["extra_logs"]["focal/group_rows"], 4)
            for k, v in out["extra_logs"].items():
                self.assertIsInstance(v, (int, float), k)
                self.assertTrue(math.isfinite(v), k)

    def test_slime_remote_rm_one_sample_per_request(self):
        # slime's remote_rm: POST {"prompt", "response", "label"} per sample, reads the JSON reply (--reward-key reward).
        rows = [label(1, 0, 0.5), label(0, 1, 0.5), label(0.5, 0.5, 0), label(0.2, 0.9, 1)]
        expected = FocalRewardClient(self.plain_url).score({"Q": [json.loads(r) for r in rows]})["rewards"]
        from concurrent.futures import ThreadPoolExecutor
        c = FocalRewardClient(self.url)
        with ThreadPoolExecutor(max_workers=4) as pool:
            outs = list(pool.map(lambda r: c.post("/get_reward", {"prompt": "Q", "response": f" answer {r}", "label": r}), rows))
        for out, want in zip(outs, expected):
            self.assertAlmostEqual(out["reward"], want, delta=1e-6)


class Retries(unittest.TestCase):
    def test_retry_after_a_timeout(self):
        calls = []

        class Slow(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                calls.append(time.monotonic())
                self.rfile.read(int(self.headers["content-length"]))
                if len(calls) == 1:
                    time.sleep(1.0)  # longer than the client's timeout
                body = json.dumps({"rewards": [0.5], "scores": [0.5], "extra_logs": {}}).encode()
                try:
                    self.send_response(200)
                    self.send_header("content-length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                except (BrokenPipeError, ConnectionResetError):
                    pass

            def log_message(self, *a):
                pass

        srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Slow)
        threading.Thread(target=srv.serve_forever, daemon=True).start()
        try:
            c = FocalRewardClient(f"http://127.0.0.1:{srv.server_address[1]}", timeout=0.3, retries=3, backoff=0.01)
            self.assertEqual(c.get_reward(["q"], ["p"], ["{}"])["rewards"], [0.5])
            self.assertEqual(len(calls), 2)
        finally:
            srv.shutdown()
            srv.server_close()


if __name__ == "__main__":
    unittest.main()
