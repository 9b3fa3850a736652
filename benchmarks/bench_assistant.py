"""Assistant benchmark: the local LLM on 2 cores, the assistant end to end, and the eval
metrics of every prompt version.

    uv run python benchmarks/bench_assistant.py [--home .retail] [--threads 2]
                                                [--latency-cases 40] [--max-cases N]
                                                [--prompts v1,v2,negative-control]

Needs a platform materialized at --home (default RETAIL_HOME) with `assistant_rag_index`
published (`retail materialize --select 'key:assistant_rag_index'`). In one run:
1. loads SmolLM2-135M-Instruct (Q4_1 GGUF) with llama.cpp on --threads threads and measures
   prompt processing (tokens/s over a ~600-token prompt, cache cleared) and generation
   (tokens/s after the first token, 128 tokens);
2. answers --latency-cases benchmark questions with the production prompt (v2 when none is
   promoted) and reports p50/p95 latency, the LLM's share of it, and output tokens/s;
3. runs the whole benchmark (or --max-cases of it) for each prompt file and prints recall@5,
   hallucination before (model) and after (system) the guard, factual accuracy, refusal
   accuracy, injection resistance and p50/p95 latency per prompt, and the gate's verdict of
   each against v2. Nothing is registered or promoted; results are not logged to MLflow.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np


def _settings(home: str | None):
    if home:
        os.environ["RETAIL_HOME"] = str(Path(home).resolve())
    from retail_assets.settings import get_settings

    return get_settings()


def bench_llm(threads: int) -> dict[str, float]:
    """Prompt processing and generation speed from llama.cpp's own counters (no Python
    streaming overhead in the numbers)."""
    import llama_cpp

    from retail_assets.assistant.llm import LocalLlamaBackend

    started = time.perf_counter()
    backend = LocalLlamaBackend(LocalLlamaBackend.shared().model_path, threads=threads)
    llama = backend._load()
    load_s = time.perf_counter() - started
    filler = " ".join(
        f"[product SKU-{i:05d}] Trail running shoe {i}, breathable mesh, $ {50 + i}.99."
        for i in range(40)
    )
    prompt_rates, gen_rates, prompt_tokens = [], [], 0
    for repeat in range(3):
        for content, max_tokens in (
            (f"Run {repeat}. {filler}\nSummarise.", 1),
            (f"Write a long story about a hiking trip, part {repeat}.", 128),
        ):
            llama.reset()  # no prefix cache: every prompt token is processed
            llama_cpp.llama_perf_context_reset(llama.ctx)
            out = llama.create_chat_completion(
                messages=[{"role": "user", "content": content}],
                max_tokens=max_tokens,
                temperature=0.0,
            )
            perf = llama_cpp.llama_perf_context(llama.ctx)
            if max_tokens == 1:
                prompt_tokens = out["usage"]["prompt_tokens"]
                prompt_rates.append(perf.n_p_eval / (perf.t_p_eval_ms / 1000))
            elif perf.n_eval:
                gen_rates.append(perf.n_eval / (perf.t_eval_ms / 1000))
    return {
        "load_s": load_s,
        "prompt_tokens": int(prompt_tokens),
        "prompt_tokens_per_s": float(np.median(prompt_rates)),
        "prompt_seconds": prompt_tokens / float(np.median(prompt_rates)),
        "generation_tokens_per_s": float(np.median(gen_rates)) if gen_rates else float("nan"),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--home", default=None)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--latency-cases", type=int, default=40)
    parser.add_argument("--max-cases", type=int, default=None)
    parser.add_argument("--prompts", default="v1,v2,negative-control")
    parser.add_argument(
        "--sections", default="llm,latency,evals", help="any of llm, latency, evals"
    )
    args = parser.parse_args()
    os.environ["RETAIL_LLM_THREADS"] = str(args.threads)

    from evals.cases import build_suite
    from evals.checks import Truth
    from evals.runner import load_truth_frames
    from retail_assets.assistant.assets import AssistantResource
    from retail_assets.assistant.index import read_manifest
    from retail_assets.warehouse import WarehouseResource

    settings = _settings(args.home)
    resource = AssistantResource.from_settings(settings)
    store = resource.index_store()
    if store.champion() is None:
        sys.exit(f"no RAG index published under {store.root}: materialize assistant_rag_index")
    warehouse = WarehouseResource(path=str(settings.warehouse_path))
    products, documents = load_truth_frames(warehouse)
    suite = build_suite(products, resource.policy_facts()).select(args.max_cases)
    truth = Truth.build(products, documents, suite.fixture_products)
    manifest = read_manifest(store)
    print(
        f"home={settings.home} index={manifest['version']} ({manifest['products']} SKUs, "
        f"{manifest['document_sections']} policy sections) cases={len(suite.cases)} "
        f"cpu_count={os.cpu_count()} threads={args.threads} "
        f"loadavg={os.getloadavg()[0]:.2f} (other work on the machine skews every number)"
    )

    sections = set(args.sections.split(","))
    if "llm" in sections:
        print_llm(args.threads)
    if "latency" in sections or "evals" in sections:
        run_assistant(args, resource, suite, truth, sections)


def print_llm(threads: int) -> None:
    print("\n== local LLM (SmolLM2-135M-Instruct Q4_1, llama.cpp)")
    llm = bench_llm(threads)
    print(f"load                      {llm['load_s']:.2f} s")
    print(
        f"prompt processing         {llm['prompt_tokens_per_s']:.0f} tokens/s "
        f"({llm['prompt_tokens']} tokens in {llm['prompt_seconds']:.2f} s)"
    )
    print(f"generation                {llm['generation_tokens_per_s']:.0f} tokens/s")
    print(f"loadavg after             {os.getloadavg()[0]:.2f}")


def run_assistant(args, resource, suite, truth, sections) -> None:
    from evals.prompt_files import prompt_templates
    from retail_assets.assistant.llm import backend_from_env
    from retail_assets.assistant.prompts import load_prompt_version

    files = prompt_templates()
    prompts = resource.artifacts.artifacts.prompts()
    production = (
        load_prompt_version(prompts.version_dir(prompts.champion()))
        if prompts.champion()
        else files["v2"]
    )
    backend = backend_from_env()
    if "latency" in sections:
        latency(args, resource, suite, production, backend)
    if "evals" not in sections:
        return
    evals_per_prompt(args, resource, suite, truth, files, backend)


def _index(resource):
    """A fresh copy of the published RAG index (the eval suite inserts test products)."""
    from retail_assets.assistant.index import load_champion

    return load_champion(resource.index_store(), resource.encoders())


def latency(args, resource, suite, production, backend) -> None:
    from evals.runner import eval_assistant

    print(f"\n== assistant end to end, prompt {production.label}, {backend.name}: {backend.model}")
    assistant = eval_assistant(_index(resource), production, backend, suite)
    assistant.answer("warm up: do you sell hiking boots?")
    latencies, llm_seconds, tokens, prompt_tokens = [], 0.0, 0, []
    questions = [c.question for c in suite.cases][: args.latency_cases]
    for question in questions:
        answer = assistant.answer(question)
        latencies.append(answer.latency_ms)
        llm_seconds += answer.llm_seconds
        tokens += answer.completion_tokens
        if answer.prompt_tokens:
            prompt_tokens.append(answer.prompt_tokens)
    lat = np.array(latencies)
    print(
        f"{len(lat)} questions: p50 {np.percentile(lat, 50):.0f} ms, p95 "
        f"{np.percentile(lat, 95):.0f} ms, mean {lat.mean():.0f} ms; LLM "
        f"{1000 * llm_seconds / len(lat):.0f} ms/question ({llm_seconds * 1000 / lat.sum():.0%} "
        f"of the time), {tokens / llm_seconds if llm_seconds else float('nan'):.1f} output "
        f"tokens/s incl. prompt processing, mean prompt {np.mean(prompt_tokens):.0f} tokens"
    )
    print(f"loadavg after             {os.getloadavg()[0]:.2f}")


def evals_per_prompt(args, resource, suite, truth, files, backend) -> None:
    from evals.gate import decide
    from evals.runner import METRICS, eval_assistant, run_suite

    print(f"\n== eval metrics per prompt version ({len(suite.cases)} cases)")
    reports = {}
    for name in args.prompts.split(","):
        index = _index(resource)
        started = time.perf_counter()
        reports[name] = run_suite(eval_assistant(index, files[name], backend, suite), suite, truth)
        print(f"  {name}: {time.perf_counter() - started:.0f} s")
    width = max(len(n) for n in reports) + 2
    print(f"{'metric':<28}" + "".join(f"{n:>{max(width, 12)}}" for n in reports))
    for metric in METRICS:
        row = "".join(f"{r.metrics[metric]:>{max(width, 12)}.3f}" for r in reports.values())
        print(f"{metric:<28}{row}")
    print(f"loadavg at the end: {os.getloadavg()[0]:.2f}")
    reference = reports.get("v2")
    if reference is not None:
        print("\ngate verdict of each prompt as a candidate against v2 as production:")
        for name, report in reports.items():
            decision = decide(
                report.metrics,
                None if name == "v2" else reference.metrics,
                negative_control=files[name].negative_control,
            )
            verdict = "passes" if decision.passed else "refused: " + "; ".join(decision.reasons)
            print(f"  {name}: {verdict}")


if __name__ == "__main__":
    main()
