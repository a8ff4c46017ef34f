"""Hugging Face transformers ``generate`` in its own process, driven over stdin/stdout.

JAX (KerasHub) and PyTorch crash when loaded in one process, so the Llama benchmark
(``test_bench_llama.py``) starts this script with a directory written by KerasHub's
``export_to_transformers`` and sends it one JSON request per line; it answers each with
one JSON line. Requests:

* ``{"op": "threads", "prompt": [...], "batch": B}``: time a short greedy generate at one
  thread and at one per core, keep the faster (on a CPU shared with other processes
  PyTorch's default can be several times slower than one thread, which would flatter
  samplerlab); answers the choice and the timings.
* ``{"op": "generate", "prompt": [...], "batch": B, "new_tokens": N, "sampler":
  "greedy" | "top_p", "p": 0.9}``: one timed ``generate`` of exactly ``N`` new tokens;
  answers ``seconds``, the first row's new tokens and the process's peak RSS (VmHWM).
"""

from __future__ import annotations

import json
import os
import sys
import time


def peak_rss_mb() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return float("nan")


def main(model_dir: str) -> None:
    import torch
    import transformers

    transformers.logging.set_verbosity_error()
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.eval()

    def generate(prompt: list[int], batch: int, new_tokens: int, sampler: str = "greedy",
                 p: float = 0.9) -> tuple[float, list[int]]:
        ids = torch.tensor([prompt] * batch)
        kwargs = ({"do_sample": False} if sampler == "greedy"
                  else {"do_sample": True, "top_p": p, "top_k": 0, "temperature": 1.0})
        torch.manual_seed(1)
        start = time.perf_counter()
        with torch.inference_mode():
            out = model.generate(ids, attention_mask=torch.ones_like(ids),
                                 max_new_tokens=new_tokens, min_new_tokens=new_tokens,
                                 pad_token_id=0, **kwargs)
        return time.perf_counter() - start, out[0, len(prompt):].tolist()

    reply({"ready": True, "torch": torch.__version__,
           "transformers": transformers.__version__})
    for line in sys.stdin:
        request = json.loads(line)
        if request["op"] == "threads":
            seconds = {}
            for n in sorted({1, os.cpu_count() or 1}):
                torch.set_num_threads(n)
                generate(request["prompt"], request["batch"], 8)  # warm-up
                seconds[n] = generate(request["prompt"], request["batch"], 8)[0]
            best = min(seconds, key=seconds.get)
            torch.set_num_threads(best)
            reply({"torch_threads": best, "short_run_s_by_threads": seconds})
        elif request["op"] == "generate":
            seconds, tokens = generate(request["prompt"], request["batch"],
                                       request["new_tokens"], request["sampler"],
                                       request.get("p", 0.9))
            reply({"seconds": seconds, "tokens": tokens, "peak_rss_mb": peak_rss_mb()})


def reply(message: dict) -> None:
    print(json.dumps(message), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
