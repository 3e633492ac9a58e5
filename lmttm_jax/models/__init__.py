"""LMTTM and TTM as Flax modules, and the names a config is checked against
(`PROCESSING_UNITS`: form -> unit name -> module; `LEARNERS`: reads; `WRITERS`)."""

from lmttm_jax.models.forms import FORMS as FORMS
from lmttm_jax.models.heads import HEADS as HEADS
from lmttm_jax.models.layers import KERNELS as KERNELS
from lmttm_jax.models.layers import resolve_kernels as resolve_kernels
from lmttm_jax.models.lmttm import LMTTM as LMTTM
from lmttm_jax.models.processing import PROCESSING_UNITS as PROCESSING_UNITS
from lmttm_jax.models.recurrent import MEMORY_INITS as MEMORY_INITS
from lmttm_jax.models.registry import BASELINES as BASELINES
from lmttm_jax.models.registry import MODELS as MODELS
from lmttm_jax.models.registry import build_model as build_model
from lmttm_jax.models.spec import ModelSpec as ModelSpec
from lmttm_jax.models.token_learner import LEARNERS as LEARNERS
from lmttm_jax.models.token_learner import WRITERS as WRITERS
from lmttm_jax.models.tokenizer import TOKENIZERS as TOKENIZERS
from lmttm_jax.models.ttm import TTM as TTM
