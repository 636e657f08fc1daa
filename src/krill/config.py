"""krill's config: the schema (`krill.config_schema`: one pydantic tree, the paper's defaults, every
field documented) and how it is loaded (`krill.config_load`: defaults < preset < file < `--set`).
Import the public names from here."""

from krill.config_load import (
    check_cache_dir,
    check_endpoints,
    load_config,
    parse_override,
    preset_dict,
    read_config_file,
)
from krill.config_schema import (
    PRESETS,
    AblateConfig,
    AgentConfig,
    AlfworldConfig,
    DistillConfig,
    EmbeddingConfig,
    EndpointConfig,
    EnvConfig,
    EvalConfig,
    EvolutionConfig,
    KrillConfig,
    LoraConfig,
    ModelConfig,
    PolicyConfig,
    RetrievalConfig,
    RlConfig,
    Sampling,
    SftConfig,
    SkillsConfig,
    TeacherConfig,
    TrainConfig,
    WebshopConfig,
    deep_merge,
)

__all__ = [
    "PRESETS", "AblateConfig", "AgentConfig", "AlfworldConfig", "DistillConfig", "EmbeddingConfig",
    "EndpointConfig", "EnvConfig", "EvalConfig", "EvolutionConfig", "KrillConfig", "LoraConfig", "ModelConfig",
    "PolicyConfig", "RetrievalConfig", "RlConfig", "Sampling", "SftConfig", "SkillsConfig", "TeacherConfig",
    "TrainConfig", "WebshopConfig", "check_cache_dir", "check_endpoints", "deep_merge", "load_config",
    "parse_override", "preset_dict", "read_config_file",
]  # fmt: skip
