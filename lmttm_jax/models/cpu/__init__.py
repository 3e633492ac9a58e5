"""CPU speed kernels (`ModelSpec.kernels="cpu"`): the layer set `layers.CPU` and the
cached formulation of the LMTTM recurrence (`recurrence.py`)."""
