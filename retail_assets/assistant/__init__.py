"""The RAG shopping assistant: a versioned llama-index vector index over the product catalog and
the policy/FAQ documents, pluggable LLM backends (local SmolLM2 GGUF by default, any
OpenAI-compatible endpoint), prompt versions in the MLflow Prompt Registry, and a grounding
guard that checks every SKU, price, size and policy claim against the retrieved context.

Modules:
    safety      prompt-injection detection and sanitising of user and retrieved text
    documents   catalog rows and policy documents -> index nodes (text + trusted metadata)
    index       the llama-index VectorStoreIndex with the ONNX text encoder, versioned on disk
    llm         LLM backends behind one interface
    prompts     prompt files, the MLflow Prompt Registry and the serving pointer
    guard       claim extraction and checking against the retrieved context
    assistant   the request path: retrieve, prompt, generate, guard, compose, cite
    assets      Dagster assets and checks (group `assistant`)
"""
