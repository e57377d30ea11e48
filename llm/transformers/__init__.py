"""The SOS model in this process: Qwen3 (+ the SOS LoRA) in 4-bit, continuously batched.

Three parts, one module each:

* :mod:`llm.transformers.loading`: :func:`load_model` loads the base model and adapter once per
  process (4-bit NF4, optionally merged) and reports what it loaded.
* :mod:`llm.transformers.engine`: :class:`GenerationEngine` owns the model on one worker thread
  and decodes every session's answer together (continuous batching).
* :mod:`llm.transformers.answerer`: :class:`TransformersAnswerer`, the
  :class:`llm.base.Answerer` over the engine.

The package shares its name with the ``transformers`` library it wraps; imports are absolute,
so ``import transformers`` inside it is the library.
"""

from llm.transformers.answerer import TransformersAnswerer
from llm.transformers.engine import GenerationEngine
from llm.transformers.loading import LoadedModel, ModelLoadError, load_model
from llm.transformers.request import RequestStats

__all__ = [
    "GenerationEngine",
    "LoadedModel",
    "ModelLoadError",
    "RequestStats",
    "TransformersAnswerer",
    "load_model",
]
