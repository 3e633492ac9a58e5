"""The dataset configs as files (`--config=configs/organ.py:recipe=cpu`); each is
`lmttm_jax.recipes.dataset_config` of its dataset, with its command and measured results."""
