"""The Ray Serve application's settings, and the Serve config file loader.

One file format works both ways: a standard Ray Serve config file (``serve run FILE`` /
``serve deploy FILE``) whose application has ``import_path:
gar_tool.integrations.ray.serve_app:build`` and whose ``args`` are a :class:`ServeAppConfig`;
``gar serve --ray --ray-config FILE`` reads the same file (:func:`load_serve_file`). See
``examples/ray_serve_config.yaml``.

Deployments (names used in the file's ``deployments:`` overrides):

=================  ============================================================================
``GARModels``      GAR; checkpoints of :attr:`ServeAppConfig.models` multiplexed per replica,
                   calls dynamically batched with ``@serve.batch``. GPUs go here.
``Grounding``      Grounding DINO (+ SAM): ``gar_ground`` and box / point prompts → masks.
``SessionStore``   the one session store of image and region ids; **keep it at one replica**.
``Front``          the HTTP API (``create_app`` of ``gar serve``), the tools' orchestration.
=================  ============================================================================

Nothing here imports Ray.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gar_tool.errors import InputError

#: The deployment names, in the order they are built (overrides refer to them).
DEPLOYMENTS = ("GARModels", "Grounding", "SessionStore", "Front")
#: ``import_path`` of the application builder in a Serve config file.
IMPORT_PATH = "gar_tool.integrations.ray.serve_app:build"


def _off(value: Any) -> Any:
    """``"none"`` / ``"off"`` / ``""`` → None (leave the component out), as the CLI does."""
    if isinstance(value, str) and value.strip().lower() in ("", "none", "off"):
        return None
    return value


class StoreLimits(BaseModel):
    """Bounds of the shared session store (:class:`~gar_tool.tools.store.SessionStore`)."""

    model_config = ConfigDict(extra="forbid")
    max_images: int = Field(default=256, ge=1)
    max_image_bytes: int = Field(default=4 << 30, ge=1)
    max_regions: int = Field(default=8192, ge=1)
    max_region_bytes: int = Field(default=2 << 30, ge=1)


class ServeAppConfig(BaseModel):
    """Arguments of the Serve application (the ``args:`` block of a Serve config file).

    Attributes:
        models: GAR checkpoints served from one replica pool, by the name a request chooses them
            with (header ``X-GAR-Model``, or Ray's ``serve_multiplexed_model_id``): a directory
            or hub id each. Requests cannot name other paths.
        default_model: the model of requests that name none (default: the first of ``models``).
        detector / segmenter: Grounding DINO and SAM (directory, hub id; segmenter ``"sam"`` =
            the default SAM); ``None`` leaves them out (no ``gar_ground`` / boxes stay rectangles).
        models_per_replica: most checkpoints one GAR replica keeps loaded (least recently used
            unloaded first).
        max_batch / batch_wait_ms: ``@serve.batch`` settings of the GAR calls.
        device / dtype / compat / max_new_tokens: as for ``gar serve``.
        allow_dirs / allow_urls: image inputs of the front (paths must exist on every front node).
        max_request_mb / max_concurrency / retry_after: the front's HTTP limits (per replica).
        allow_hosts / allow_origins / body_timeout: the front's Host / Origin checks and body
            read timeout, as ``--allow-host`` / ``--allow-origin`` / ``--body-timeout`` of
            ``gar serve`` (``allow_hosts`` None: the loopback names only; list the names clients use
            when the cluster's HTTP proxy listens on other interfaces).
        store: bounds of the shared session store.
    """

    model_config = ConfigDict(extra="forbid")

    models: dict[str, str] = Field(default_factory=lambda: {"gar-1b": "HaochenWang/GAR-1B"})
    default_model: str | None = None
    detector: str | None = "IDEA-Research/grounding-dino-tiny"
    segmenter: str | None = None
    models_per_replica: int = Field(2, ge=1)
    max_batch: int = Field(8, ge=1)
    batch_wait_ms: float = Field(10.0, ge=0)
    device: str | None = None
    dtype: str | None = None
    compat: Literal["default", "original"] = "default"
    max_new_tokens: int = Field(256, ge=1)
    allow_dirs: list[str] | None = None
    allow_urls: bool = False
    max_request_mb: float = Field(40.0, gt=0)
    max_concurrency: int = Field(16, ge=1)
    retry_after: int = Field(1, ge=1)
    allow_hosts: list[str] | None = None
    allow_origins: list[str] = Field(default_factory=list)
    body_timeout: float = Field(30.0, gt=0)
    store: StoreLimits = Field(default_factory=lambda: StoreLimits())

    @field_validator("detector", "segmenter", mode="before")
    @classmethod
    def _none_words(cls, v: Any) -> Any:
        return _off(v)

    @field_validator("models")
    @classmethod
    def _names(cls, v: dict[str, str]) -> dict[str, str]:
        if not v:
            raise ValueError("give at least one GAR model (name: directory or hub id)")
        for name in v:
            if not name or len(name) > 128 or not all(c.isalnum() or c in "-_.:" for c in name):
                raise ValueError(f"model name {name!r} must be 1-128 letters, digits or -_.: (it is sent in a "
                                 "request header)")
        return v

    @model_validator(mode="after")
    def _default(self) -> "ServeAppConfig":
        if self.default_model is None:
            self.default_model = next(iter(self.models))
        elif self.default_model not in self.models:
            raise ValueError(f"default_model {self.default_model!r} is not one of models ({', '.join(self.models)})")
        return self

    @property
    def default(self) -> str:
        """The default model's name (always set after validation)."""
        return self.default_model or next(iter(self.models))


def app_config(args: Any) -> ServeAppConfig:
    """``args`` (a dict, or a config already) → :class:`ServeAppConfig`; ``InputError`` naming
    every wrong field."""
    if isinstance(args, ServeAppConfig):
        return args
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise InputError(f"the application args must be a mapping, got {type(args).__name__}")
    try:
        return ServeAppConfig.model_validate(args)
    except ValidationError as exc:
        parts = [f"{'.'.join(str(p) for p in e['loc']) or 'args'}: {e['msg']}" for e in exc.errors()[:5]]
        raise InputError("invalid gar Ray Serve args: " + "; ".join(parts)) from None


#: Keys of a deployment override that are passed to ``Deployment.options``.
OVERRIDE_KEYS = frozenset({"num_replicas", "ray_actor_options", "autoscaling_config", "max_ongoing_requests",
                           "max_queued_requests", "user_config", "health_check_period_s",
                           "health_check_timeout_s", "graceful_shutdown_timeout_s", "placement_group_bundles",
                           "placement_group_strategy", "max_replicas_per_node", "request_router_config"})


class ServeFile(BaseModel):
    """What :func:`load_serve_file` takes from a Serve config file: the gar application."""

    name: str
    route_prefix: str | None
    args: ServeAppConfig
    deployments: dict[str, dict[str, Any]]


def load_serve_file(path: str | Path) -> ServeFile:
    """Read a Ray Serve config file (YAML or JSON) and return its gar application: the one whose
    ``import_path`` is :data:`IMPORT_PATH` (``InputError`` if there is none, or its ``args`` /
    ``deployments`` are wrong)."""
    import yaml

    p = Path(path)
    if not p.is_file():
        raise InputError(f"Ray Serve config file not found: {str(p)!r}")
    try:
        data = yaml.safe_load(p.read_text(encoding="utf-8"))
    except (yaml.YAMLError, UnicodeDecodeError) as exc:
        raise InputError(f"Ray Serve config {str(p)!r} is not valid YAML ({str(exc).splitlines()[0]})") from None
    apps = data.get("applications") if isinstance(data, dict) else None
    if not isinstance(apps, list):
        raise InputError(f"Ray Serve config {str(p)!r} has no 'applications' list")
    ours = [a for a in apps if isinstance(a, dict) and a.get("import_path") == IMPORT_PATH]
    if len(ours) != 1:
        raise InputError(f"Ray Serve config {str(p)!r} must have exactly one application with import_path "
                         f"{IMPORT_PATH!r}, found {len(ours)}")
    app = ours[0]
    overrides: dict[str, dict[str, Any]] = {}
    for d in app.get("deployments") or []:
        name = d.get("name") if isinstance(d, dict) else None
        if name not in DEPLOYMENTS:
            raise InputError(f"deployment override {name!r} in {str(p)!r}: expected one of {', '.join(DEPLOYMENTS)}")
        unknown = sorted(set(d) - OVERRIDE_KEYS - {"name"})
        if unknown:
            raise InputError(f"deployment {name}: unknown option(s) {', '.join(unknown)}")
        overrides[name] = {k: v for k, v in d.items() if k != "name"}
    if overrides.get("SessionStore", {}).get("num_replicas", 1) != 1 or "autoscaling_config" in overrides.get(
            "SessionStore", {}):
        raise InputError("the SessionStore deployment must have exactly one replica (it holds the ids every "
                         "front replica shares)")
    return ServeFile(name=str(app.get("name") or "gar"), route_prefix=app.get("route_prefix", "/"),
                     args=app_config(app.get("args")), deployments=overrides)


__all__ = ["ServeAppConfig", "StoreLimits", "ServeFile", "app_config", "load_serve_file", "DEPLOYMENTS",
           "IMPORT_PATH", "OVERRIDE_KEYS"]
