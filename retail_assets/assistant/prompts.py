"""Prompt versions: TOML files under `evals/prompts/`, registered in the MLflow Prompt Registry
as chat templates (prompt `retail-assistant`), with the alias `production` on the version
serving uses.

    evals/prompts/<name>.toml           description, negative_control, [[messages]] role/content
    MLflow prompt `retail-assistant`    one version per distinct file content (tags name it)
    <assistant_dir>/prompts/PRODUCTION.json
                                        the serving pointer: the production version's template,
                                        written atomically whenever the alias moves

Templates use MLflow's `{{variable}}` syntax: `{{retailer}}`, `{{context}}`, `{{question}}`.
Serving reads the pointer file (like model bundles' CHAMPION.json), so the request path never
talks to the tracking database; the alias in MLflow is the source of truth and only
`PromptRegistry.set_production` moves both.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import logging
import re
import tomllib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from retail_assets.atomic_files import write_json_atomic

PROMPT_NAME = "retail-assistant"
PRODUCTION = "production"
POINTER_FILE = "PRODUCTION.json"
TAG_FILE = "retail.prompt_file"
TAG_SHA = "retail.content_sha"
TAG_NEGATIVE = "retail.negative_control"
_VARIABLE = re.compile(r"\{\{\s*(\w+)\s*\}\}")


def prompts_dir() -> Path:
    spec = importlib.util.find_spec("evals")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("the evals package (prompt files) is not installed")
    return Path(next(iter(spec.submodule_search_locations))) / "prompts"


@dataclass
class PromptTemplate:
    """A chat template: system and user messages with `{{variables}}`."""

    name: str
    messages: list[dict[str, str]]
    description: str = ""
    negative_control: bool = False
    version: str | None = None  # MLflow prompt version once registered

    @property
    def sha(self) -> str:
        return hashlib.sha256(json.dumps(self.messages, sort_keys=True).encode()).hexdigest()[:16]

    @property
    def label(self) -> str:
        return f"v{self.version} ({self.name})" if self.version else self.name

    @classmethod
    def from_file(cls, path: Path) -> PromptTemplate:
        data = tomllib.loads(path.read_text())
        messages = [
            {"role": str(m["role"]), "content": str(m["content"])} for m in data["messages"]
        ]
        if not messages or messages[-1]["role"] != "user":
            raise ValueError(f"{path}: the last message must be the user's")
        if "{{question}}" not in messages[-1]["content"].replace(" ", ""):
            raise ValueError(f"{path}: the user message must contain {{{{question}}}}")
        return cls(
            name=path.stem,
            messages=messages,
            description=str(data.get("description", "")),
            negative_control=bool(data.get("negative_control", False)),
        )

    def render(
        self,
        *,
        question: str,
        context: str,
        retailer: str,
        history: list[dict[str, str]] | None = None,
    ) -> list[dict[str, str]]:
        values = {"question": question, "context": context, "retailer": retailer}

        def fill(text: str) -> str:
            return _VARIABLE.sub(lambda m: values.get(m.group(1), ""), text)

        rendered = [{"role": m["role"], "content": fill(m["content"])} for m in self.messages]
        if history:
            rendered[-1:-1] = history
        return rendered

    def as_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "version": self.version,
            "description": self.description,
            "negative_control": self.negative_control,
            "sha": self.sha,
            "messages": self.messages,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PromptTemplate:
        return cls(
            name=data["name"],
            messages=[dict(m) for m in data["messages"]],
            description=data.get("description", ""),
            negative_control=bool(data.get("negative_control", False)),
            version=data.get("version"),
        )


def prompt_files(folder: Path | None = None) -> dict[str, PromptTemplate]:
    folder = folder or prompts_dir()
    return {p.stem: PromptTemplate.from_file(p) for p in sorted(folder.glob("*.toml"))}


@dataclass
class RegisteredPrompt:
    version: str
    name: str
    sha: str
    negative_control: bool
    aliases: list[str] = field(default_factory=list)
    description: str = ""


def _mlflow_client(tracking_uri: str):
    from mlflow import MlflowClient

    logging.getLogger("mlflow").setLevel(logging.WARNING)
    return MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


class PromptRegistry:
    """The MLflow Prompt Registry side, plus the serving pointer and the promotion log."""

    def __init__(self, tracking_uri: str, pointer_dir: Path, promotion_log: Path | None = None):
        self.tracking_uri = tracking_uri
        self.pointer_dir = Path(pointer_dir)
        self.promotion_log = promotion_log
        self._client = None

    @property
    def client(self):
        if self._client is None:
            self._client = _mlflow_client(self.tracking_uri)
        return self._client

    # -- reading ------------------------------------------------------------------------------

    def versions(self) -> list[RegisteredPrompt]:
        """Registered versions, oldest first."""
        from mlflow.exceptions import MlflowException

        try:
            found = list(self.client.search_prompt_versions(PROMPT_NAME))
        except MlflowException:
            return []
        aliases = self._aliases()
        out = []
        for pv in found:
            tags = pv.tags or {}
            out.append(
                RegisteredPrompt(
                    version=str(pv.version),
                    name=tags.get(TAG_FILE, f"v{pv.version}"),
                    sha=tags.get(TAG_SHA, ""),
                    negative_control=tags.get(TAG_NEGATIVE) == "true",
                    aliases=sorted(a for a, v in aliases.items() if v == str(pv.version)),
                    description=pv.commit_message or "",
                )
            )
        return sorted(out, key=lambda r: int(r.version))

    def _aliases(self) -> dict[str, str]:
        from mlflow.exceptions import MlflowException

        try:
            pv = self.client.get_prompt_version_by_alias(PROMPT_NAME, PRODUCTION)
        except MlflowException:
            return {}
        return {PRODUCTION: str(pv.version)}

    def production(self) -> str | None:
        return self._aliases().get(PRODUCTION)

    def newest_candidate(self, versions: list[RegisteredPrompt] | None = None) -> str | None:
        """The newest registered version (of `versions`, if already listed) that is not a
        negative control."""
        listed = self.versions() if versions is None else versions
        candidates = [v for v in listed if not v.negative_control]
        return candidates[-1].version if candidates else None

    def load(self, version: str) -> PromptTemplate:
        pv = self.client.get_prompt_version(PROMPT_NAME, str(version))
        template = pv.template
        messages = json.loads(template) if isinstance(template, str) else template
        tags = pv.tags or {}
        return PromptTemplate(
            name=tags.get(TAG_FILE, f"v{pv.version}"),
            messages=[{"role": m["role"], "content": m["content"]} for m in messages],
            description=pv.commit_message or "",
            negative_control=tags.get(TAG_NEGATIVE) == "true",
            version=str(pv.version),
        )

    def resolve(self, spec: str | None) -> PromptTemplate:
        """A version number ("3"), a prompt file name ("v2", registered if needed), or None
        for the newest registered non-negative-control version."""
        if spec is None or spec == "":
            version = self.newest_candidate()
            if version is None:
                raise LookupError(f"no version of prompt {PROMPT_NAME!r} is registered")
            return self.load(version)
        if spec.isdigit():
            return self.load(spec)
        files = prompt_files()
        if spec not in files:
            raise LookupError(
                f"unknown prompt {spec!r}: use a registered version number or one of "
                + ", ".join(sorted(files))
            )
        return self.register(files[spec])

    # -- writing ------------------------------------------------------------------------------

    def register(self, template: PromptTemplate) -> PromptTemplate:
        """Register a prompt file's content unless that exact content already is."""
        for existing in self.versions():
            if existing.sha == template.sha and existing.name == template.name:
                template.version = existing.version
                return template
        pv = self.client.register_prompt(
            name=PROMPT_NAME,
            template=template.messages,
            commit_message=template.description or template.name,
            tags={
                TAG_FILE: template.name,
                TAG_SHA: template.sha,
                TAG_NEGATIVE: "true" if template.negative_control else "false",
            },
        )
        template.version = str(pv.version)
        return template

    def sync(self, folder: Path | None = None) -> list[PromptTemplate]:
        """Register every prompt file except negative controls (those only when named)."""
        return [self.register(t) for t in prompt_files(folder).values() if not t.negative_control]

    def set_production(
        self, template: PromptTemplate, *, reason: str, actor: str, details: dict | None = None
    ) -> dict[str, Any]:
        before = self.production()
        self.client.set_prompt_alias(PROMPT_NAME, PRODUCTION, int(template.version))
        self.write_pointer(template)
        record = {
            "model": "assistant_prompt",
            "action": "promote",
            "version": template.version,
            "prompt_file": template.name,
            "champion_before": before,
            "champion_after": template.version,
            "reason": reason,
            "actor": actor,
            "details": details or {},
        }
        return self._log(record)

    def record_refusal(
        self, template: PromptTemplate, reasons: list[str], details: dict | None = None
    ) -> dict[str, Any]:
        production = self.production()
        return self._log(
            {
                "model": "assistant_prompt",
                "action": "refuse",
                "version": template.version,
                "prompt_file": template.name,
                "champion_before": production,
                "champion_after": production,
                "reason": "; ".join(reasons),
                "actor": "assistant_eval_gate",
                "details": details or {},
            }
        )

    def _log(self, record: dict[str, Any]) -> dict[str, Any]:
        if self.promotion_log is None:
            return record
        from retail_assets.models.lifecycle.promotion_log import PromotionLog

        return PromotionLog(self.promotion_log).append(record)

    def write_pointer(self, template: PromptTemplate) -> Path:
        self.pointer_dir.mkdir(parents=True, exist_ok=True)
        document = {
            "prompt": PROMPT_NAME,
            "alias": PRODUCTION,
            "tracking_uri": self.tracking_uri,
            "published_at": datetime.now(UTC).isoformat(),
            **template.as_dict(),
        }
        target = self.pointer_dir / POINTER_FILE
        write_json_atomic(target, document)
        return target


def read_pointer(pointer_dir: Path) -> PromptTemplate | None:
    path = Path(pointer_dir) / POINTER_FILE
    if not path.exists():
        return None
    return PromptTemplate.from_dict(json.loads(path.read_text()))
