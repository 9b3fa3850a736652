"""Prompt versions: chat templates registered in the MLflow Prompt Registry (prompt
`retail-assistant`) and published as a core artifact (`Artifacts.prompts()`,
`assistant/prompt`) for serving.

    MLflow prompt `retail-assistant`        one version per distinct template content
    <assistant_dir>/prompts/versions/<v>/   prompt.json: the template of registered version v
    <assistant_dir>/prompts/ROLES.json      champion = the production prompt

Templates use MLflow's `{{variable}}` syntax: `{{retailer}}`, `{{context}}`, `{{question}}`.
Serving reads the artifact store (like model bundles), so the request path never talks to the
tracking database. The store's champion is the truth; MLflow's alias `production` mirrors it
and `PromptRegistry.set_production` moves both. The template files themselves are the eval
suite's (`evals/prompts/`): the assistant never imports the evals package.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from retail_assets.core.store import ArtifactStore

PROMPT_NAME = "retail-assistant"
PRODUCTION = "production"
PROMPT_FILE = "prompt.json"
TAG_FILE = "retail.prompt_file"
TAG_SHA = "retail.content_sha"
TAG_NEGATIVE = "retail.negative_control"
_VARIABLE = re.compile(r"\{\{\s*(\w+)\s*\}\}")


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


def prompt_files(folder: Path) -> dict[str, PromptTemplate]:
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
    """The MLflow Prompt Registry side plus the prompt artifact store serving reads."""

    def __init__(self, tracking_uri: str, store: ArtifactStore):
        self.tracking_uri = tracking_uri
        self.store = store
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
        production = self.production()
        out = []
        for pv in found:
            tags = pv.tags or {}
            out.append(
                RegisteredPrompt(
                    version=str(pv.version),
                    name=tags.get(TAG_FILE, f"v{pv.version}"),
                    sha=tags.get(TAG_SHA, ""),
                    negative_control=tags.get(TAG_NEGATIVE) == "true",
                    aliases=[PRODUCTION] if str(pv.version) == production else [],
                    description=pv.commit_message or "",
                )
            )
        return sorted(out, key=lambda r: int(r.version))

    def production(self) -> str | None:
        """The production version: the store's champion (MLflow's alias mirrors it)."""
        return self.store.champion()

    def mlflow_production(self) -> str | None:
        from mlflow.exceptions import MlflowException

        try:
            return str(self.client.get_prompt_version_by_alias(PROMPT_NAME, PRODUCTION).version)
        except MlflowException:
            return None

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

    def resolve(self, spec: str | None, files: dict[str, PromptTemplate]) -> PromptTemplate:
        """A version number ("3"), a prompt file name ("v2" of `files`, registered if needed),
        or None for the newest registered non-negative-control version."""
        if spec is None or spec == "":
            version = self.newest_candidate()
            if version is None:
                raise LookupError(f"no version of prompt {PROMPT_NAME!r} is registered")
            return self.load(version)
        if spec.isdigit():
            return self.load(spec)
        if spec not in files:
            raise LookupError(
                f"unknown prompt {spec!r}: use a registered version number or one of "
                + ", ".join(sorted(files))
            )
        return self.register(files[spec])

    # -- writing ------------------------------------------------------------------------------

    def register(self, template: PromptTemplate) -> PromptTemplate:
        """Register a prompt's content unless that exact content already is, and stage it as
        a version of the prompt store."""
        for existing in self.versions():
            if existing.sha == template.sha and existing.name == template.name:
                template.version = existing.version
                self._stage(template)
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
        self._stage(template)
        return template

    def sync(self, templates: dict[str, PromptTemplate]) -> list[PromptTemplate]:
        """Register every template except negative controls (those only when named)."""
        return [self.register(t) for t in templates.values() if not t.negative_control]

    def _stage(self, template: PromptTemplate) -> None:
        if not self.store.has(template.version):
            self.store.write(
                template.version,
                {PROMPT_FILE: json.dumps(template.as_dict(), indent=2).encode()},
                replace=False,
            )

    def set_production(
        self,
        template: PromptTemplate,
        *,
        reason: str,
        actor: str,
        evidence: dict | None = None,
    ) -> dict[str, Any]:
        """Make `template` the production prompt: the store's champion (logged), then MLflow's
        alias."""
        self._stage(template)
        entry = self.store.promote(template.version, reason=reason, actor=actor, evidence=evidence)
        self.sync_alias()
        return entry

    def sync_alias(self) -> str | None:
        """Point MLflow's `production` alias at the store's champion; returns it."""
        production = self.production()
        if production is not None and self.mlflow_production() != production:
            self.client.set_prompt_alias(PROMPT_NAME, PRODUCTION, int(production))
        return production


def validate_prompt_version(folder: Path) -> list[str]:
    """A prompt version serves when its template parses and asks the user's question."""
    try:
        template = PromptTemplate.from_dict(json.loads((folder / PROMPT_FILE).read_text()))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        return [f"unreadable {PROMPT_FILE}: {exc}"]
    if not template.messages or template.messages[-1]["role"] != "user":
        return ["the last message must be the user's"]
    if "{{question}}" not in template.messages[-1]["content"].replace(" ", ""):
        return ["the user message must contain {{question}}"]
    return []


def load_prompt_version(folder: Path) -> PromptTemplate:
    problems = validate_prompt_version(folder)
    if problems:
        raise ValueError("; ".join(problems))
    return PromptTemplate.from_dict(json.loads((folder / PROMPT_FILE).read_text()))
