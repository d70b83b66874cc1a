"""Spatial transformers and the model zoo, each model a YAML definition (``definitions/``)."""

from stnbench.models.flops import count_flops, count_parameters
from stnbench.models.registry import (
    create_model,
    list_models,
    model_info,
    model_input_shape,
    model_sizes,
)
from stnbench.models.spatial_transformer import (
    SpatialTransformer,
    parameter_groups,
    spatial_transformers,
)
from stnbench.models.summary import describe_model, describe_zoo

__all__ = [
    "SpatialTransformer",
    "count_flops",
    "count_parameters",
    "create_model",
    "describe_model",
    "describe_zoo",
    "list_models",
    "model_info",
    "model_input_shape",
    "model_sizes",
    "parameter_groups",
    "spatial_transformers",
]
