"""The prompt templates under evaluation: TOML files in `evals/prompts/` (description,
negative_control, [[messages]] role/content)."""

from __future__ import annotations

from pathlib import Path

from retail_assets.assistant.prompts import PromptTemplate, prompt_files

PROMPTS_DIR = Path(__file__).parent / "prompts"


def prompt_templates(folder: Path = PROMPTS_DIR) -> dict[str, PromptTemplate]:
    return prompt_files(folder)
