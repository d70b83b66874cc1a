"""A model definition (the YAML of ``definitions/``) -> ``nn.Module``.

A definition lists the network's layers in order; each entry is a layer type, alone
(``- relu``) or with its arguments (``- conv: {out: 64, kernel: 9}``, ``- maxpool: 2``).
An ``st`` entry is a spatial transformer with its own ``localization`` list of layers.
Shapes are tracked from the input size, so flatten sizes are never written by hand, and a
layer that does not fit its input is reported with its place in the file.
See ``definitions/README.md`` for the format.
"""

import copy
import math
from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

from torch import Tensor, nn

from stnbench.dataset_registry import DATASETS
from stnbench.engine.recipes import list_recipes
from stnbench.errors import StnbenchError
from stnbench.models.initialisation import check_init, initialise
from stnbench.models.layers import (
    LCN_KERNELS,
    Committee,
    LocalContrastNorm,
    ScaledTanh,
    Standardize,
)
from stnbench.models.recurrent import CELLS, Positions, RecurrentLocalization
from stnbench.models.spatial_transformer import PADDINGS, SpatialTransformer
from stnbench.models.transformations import make_grid_generator

TOP_LEVEL_KEYS = (
    "name", "description", "source", "baseline", "datasets", "recipe", "preprocess", "committee",
    "init", "standardize", "sequence", "layers",
)
# Keys that describe a model without changing what it computes.
DOCUMENTATION_KEYS = ("description", "source", "baseline")
LAYER_ARGUMENTS: dict[str, tuple[str, ...]] = {
    "conv": ("out", "kernel", "stride", "padding"),
    "maxpool": ("kernel", "stride"),
    "relu": (),
    "tanh": (),
    "scaled_tanh": (),
    "linear": ("out",),
    "dropout": ("p",),
    "dropout2d": ("p",),
    "lcn": ("size", "kernel"),
    "st": ("transform", "components", "grid_size", "output_size", "padding", "localization",
           "recurrent"),
}
# The shorthand `- type: value` sets this argument.
SHORTHAND = {"maxpool": "kernel", "linear": "out", "dropout": "p", "dropout2d": "p", "lcn": "size"}
OVERRIDES = ("transform", "components", "grid_size", "columns")
CLASSES = "classes"
ACTIVATIONS: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU, "tanh": nn.Tanh, "scaled_tanh": ScaledTanh,
}

Shape = tuple[int, ...]  # (C, H, W) for feature maps, (F,) for vectors


@dataclass(frozen=True)
class InputSpec:
    in_channels: int
    input_size: int
    num_classes: int
    mean: Sequence[float] | None
    std: Sequence[float] | None


class Model(nn.Module):
    """A network built from a definition; ``definition``: the resolved YAML, overrides applied."""

    def __init__(self, name: str, definition: dict, body: nn.Module) -> None:
        super().__init__()
        self.name = name
        self.definition = definition
        self.body = body

    def forward(self, x: Tensor) -> Tensor:
        return self.body(x)


def build_model(definition: Any, source: str, spec: InputSpec, overrides: dict) -> Model:
    """Validate ``definition`` (read from ``source``, named in messages) and build it."""
    definition = resolve_definition(definition, source, overrides)
    if spec.mean is not None and len(spec.mean) != spec.in_channels:
        raise StnbenchError(f"mean {list(spec.mean)}: expected {spec.in_channels} values")
    if spec.std is not None and len(spec.std) != spec.in_channels:
        raise StnbenchError(f"std {list(spec.std)}: expected {spec.in_channels} values")
    if not definition.get("standardize", True):
        spec = replace(spec, mean=None, std=None)
    builder = _Builder(source, spec, definition.get("preprocess") or [], definition.get("sequence"))
    columns = definition.get("committee", {}).get("columns")
    if columns is None:
        body: nn.Module = builder.column(definition["layers"])
    else:
        body = Committee([builder.column(definition["layers"]) for _ in range(columns)])
    if "init" in definition:
        initialise(body, definition["init"])
    return Model(definition["name"], definition, body)


def resolve_definition(definition: Any, source: str, overrides: dict) -> dict:
    """Check the top level of ``definition`` and return a copy with ``overrides`` applied."""
    if not isinstance(definition, dict):
        raise StnbenchError(f"{source}: a model definition must be a mapping of keys to values")
    unknown = [key for key in definition if key not in TOP_LEVEL_KEYS]
    if unknown:
        raise StnbenchError(
            f"{source}: unknown key {unknown[0]!r} (expected {', '.join(TOP_LEVEL_KEYS)})"
        )
    for key in ("name", "datasets", "recipe", "layers"):
        if key not in definition:
            raise StnbenchError(f"{source}: missing key {key!r}")
    datasets = definition["datasets"]
    if not isinstance(datasets, list) or not datasets or any(d not in DATASETS for d in datasets):
        raise StnbenchError(f"{source}: datasets {datasets!r} must list some of {list(DATASETS)}")
    if definition["recipe"] not in list_recipes():
        raise StnbenchError(
            f"{source}: recipe {definition['recipe']!r} is not one of {', '.join(list_recipes())}"
        )
    if not isinstance(definition["layers"], list) or not definition["layers"]:
        raise StnbenchError(f"{source}: layers must be a non-empty list")
    if not isinstance(definition.get("preprocess", []), list):
        raise StnbenchError(f"{source}: preprocess must be a list of layers")
    baseline = definition.get("baseline")
    if baseline is not None and (not isinstance(baseline, str) or not baseline):
        raise StnbenchError(f"{source}: baseline must be the name of a model, got {baseline!r}")
    if "init" in definition:
        check_init(definition["init"], source)
    if not isinstance(definition.get("standardize", True), bool):
        raise StnbenchError(f"{source}: standardize must be true or false, "
                            f"got {definition['standardize']!r}")
    sequence = definition.get("sequence")
    if sequence is not None and (not isinstance(sequence, int) or isinstance(sequence, bool)
                                 or sequence < 1):
        raise StnbenchError(f"{source}: sequence {sequence!r} must be a positive number of "
                            "positions (the length of the label sequence)")
    committee = definition.get("committee")
    if committee is not None and (not isinstance(committee, dict) or set(committee) != {"columns"}):
        raise StnbenchError(f"{source}: committee must be a mapping with the one key 'columns'")

    resolved = copy.deepcopy(definition)
    unknown = [key for key in overrides if key not in OVERRIDES]
    if unknown:
        raise StnbenchError(
            f"{source}: unknown override {unknown[0]!r} (expected one of {', '.join(OVERRIDES)})"
        )
    if "columns" in overrides:
        if committee is None:
            raise StnbenchError(f"{source}: override 'columns' needs a committee model")
        resolved["committee"]["columns"] = overrides["columns"]
    st_overrides = {k: v for k, v in overrides.items() if k != "columns"}
    if st_overrides:
        transformers = [e["st"] for e in resolved["layers"] if isinstance(e, dict) and "st" in e]
        if not transformers:
            raise StnbenchError(
                f"{source}: override {next(iter(st_overrides))!r} needs a spatial transformer"
            )
        for st in transformers:
            if "transform" in st_overrides:
                # A new family starts from its own defaults, not the old family's options.
                st.pop("components", None)
                st.pop("grid_size", None)
            st.update(st_overrides)
    columns = resolved.get("committee", {}).get("columns")
    if columns is not None and (not isinstance(columns, int) or isinstance(columns, bool)
                                or columns < 1):
        raise StnbenchError(f"{source}: committee.columns {columns!r} must be a positive integer")
    return resolved


def _parse_entry(entry: Any, where: str) -> tuple[str, dict]:
    """``"relu"`` / ``{"conv": {...}}`` / ``{"maxpool": 2}`` -> (type, arguments)."""
    if isinstance(entry, str):
        kind, value = entry, None
    elif isinstance(entry, dict) and len(entry) == 1:
        kind, value = next(iter(entry.items()))
    else:
        raise StnbenchError(f"{where}: expected a layer type or a one-key mapping, got {entry!r}")
    if kind not in LAYER_ARGUMENTS:
        raise StnbenchError(
            f"{where}: unknown layer type {kind!r} (expected one of {', '.join(LAYER_ARGUMENTS)})"
        )
    if value is None:
        args: dict = {}
    elif isinstance(value, dict):
        args = dict(value)
    elif kind in SHORTHAND:
        args = {SHORTHAND[kind]: value}
    else:
        raise StnbenchError(f"{where}: {kind} takes a mapping of arguments, got {value!r}")
    unknown = [key for key in args if key not in LAYER_ARGUMENTS[kind]]
    if unknown:
        allowed = ", ".join(LAYER_ARGUMENTS[kind]) or "none"
        raise StnbenchError(f"{where}: {kind} has no argument {unknown[0]!r} (allowed: {allowed})")
    return kind, args


def _positive_int(args: dict, key: str, where: str, default: int | None = None) -> int:
    value = args.get(key, default)
    if value is None:
        raise StnbenchError(f"{where}: missing argument {key!r}")
    if not isinstance(value, int) or isinstance(value, bool) or value < 1:
        raise StnbenchError(f"{where}.{key}: {value!r} must be a positive integer")
    return value


def _shape_text(shape: Shape) -> str:
    return "x".join(str(s) for s in shape)


class _Builder:
    def __init__(
        self, source: str, spec: InputSpec, preprocess: list, positions: int | None = None
    ) -> None:
        self.source = source
        self.spec = spec
        self.preprocess = preprocess
        # A sequence model's positions; the last layer's `classes` scores every position at
        # once (one head each) until a recurrent transformer gives one glimpse per position.
        self.positions = positions
        self.heads = positions or 1
        self.glimpses = False

    def column(self, entries: list) -> nn.Sequential:
        """The layers of one network; standardisation follows the spatial transformers that
        read the raw [0, 1] input, so that their zero padding stays black."""
        shape: Shape = (self.spec.in_channels, self.spec.input_size, self.spec.input_size)
        modules: list[nn.Module] = []
        on_raw_input = True
        self.heads, self.glimpses = self.positions or 1, False
        for index, entry in enumerate(entries):
            where = f"{self.source}: layers[{index}]"
            kind, args = _parse_entry(entry, where)
            if kind == "st":
                if index == len(entries) - 1:
                    raise StnbenchError(
                        f"{where}: a spatial transformer cannot be the last layer "
                        "(it must feed a layer that follows it)"
                    )
                modules.append(self.spatial_transformer(args, shape, on_raw_input, f"{where}.st"))
                shape = (shape[0], *modules[-1].output_size)
                continue
            if on_raw_input:
                front, shape = self.input_normalisation(shape)
                modules.extend(front)
                on_raw_input = False
            new_modules, shape = self.layer(kind, args, shape, where, allow_classes=True)
            modules.extend(new_modules)
        if shape != (self.spec.num_classes * self.heads,):
            raise StnbenchError(
                f"{self.source}: layers[{len(entries) - 1}]: the network ends with shape "
                f"{_shape_text(shape)}, expected {self.spec.num_classes * self.heads} class "
                "scores (end with `- linear: classes`)"
            )
        if self.positions is not None:
            modules.append(Positions(self.positions, self.spec.num_classes))
        return nn.Sequential(*modules)

    def input_normalisation(self, shape: Shape) -> tuple[list[nn.Module], Shape]:
        """Standardize (when mean/std are given), then the definition's ``preprocess`` layers."""
        modules: list[nn.Module] = []
        if self.spec.mean is not None or self.spec.std is not None:
            mean = self.spec.mean or [0.0] * self.spec.in_channels
            std = self.spec.std or [1.0] * self.spec.in_channels
            modules.append(Standardize(mean, std))
        for index, entry in enumerate(self.preprocess):
            where = f"{self.source}: preprocess[{index}]"
            kind, args = _parse_entry(entry, where)
            if kind not in ("lcn",):
                raise StnbenchError(f"{where}: preprocess takes parameter-free layers (lcn), "
                                    f"not {kind!r}")
            new_modules, shape = self.layer(kind, args, shape, where)
            modules.extend(new_modules)
        return modules, shape

    def spatial_transformer(
        self, args: dict, shape: Shape, on_raw_input: bool, where: str
    ) -> SpatialTransformer:
        if len(shape) != 3:
            raise StnbenchError(f"{where}: needs a feature map, got a vector of {shape[0]}")
        if "transform" not in args:
            raise StnbenchError(f"{where}: missing argument 'transform'")
        try:
            grid_generator = make_grid_generator(
                args["transform"], components=args.get("components"),
                grid_size=args.get("grid_size"),
            )
        except StnbenchError as error:
            raise StnbenchError(f"{where}.{error}") from None
        output_size = args.get("output_size", [shape[1], shape[2]])
        if isinstance(output_size, int):
            output_size = [output_size, output_size]
        if (not isinstance(output_size, list) or len(output_size) != 2
                or not all(isinstance(s, int) and s >= 1 for s in output_size)):
            raise StnbenchError(f"{where}.output_size: {output_size!r} must be N or [H, W]")
        padding = args.get("padding", "zeros")
        if padding not in PADDINGS:
            raise StnbenchError(
                f"{where}.padding: {padding!r} must be one of {', '.join(PADDINGS)}"
            )
        # A transformer on the raw image sees it normalised as the network's first layers do.
        modules, loc_shape = self.input_normalisation(shape) if on_raw_input else ([], shape)
        localization = args.get("localization") or []
        if not isinstance(localization, list):
            raise StnbenchError(f"{where}.localization: must be a list of layers")
        for index, entry in enumerate(localization):
            entry_where = f"{where}.localization[{index}]"
            kind, layer_args = _parse_entry(entry, entry_where)
            if kind == "st":
                raise StnbenchError(f"{entry_where}: a localization net cannot hold an st")
            new_modules, loc_shape = self.layer(kind, layer_args, loc_shape, entry_where)
            modules.extend(new_modules)
        net: nn.Module = nn.Sequential(*modules)
        features = math.prod(loc_shape)
        if "recurrent" in args:
            net, features = self.recurrent(args["recurrent"], net, features, f"{where}.recurrent")
        return SpatialTransformer(net, features, grid_generator, tuple(output_size), padding)

    def recurrent(
        self, args: Any, features_net: nn.Module, features: int, where: str
    ) -> tuple[RecurrentLocalization, int]:
        """A recurrent cell over the localization features, one step (and glimpse) per
        position of the model's ``sequence``."""
        if self.positions is None:
            raise StnbenchError(f"{where}: needs the model's `sequence` (its number of steps)")
        if self.glimpses:
            raise StnbenchError(f"{where}: a network takes one recurrent transformer")
        if not (isinstance(args, dict) and set(args) == {"cell", "units"}
                and args["cell"] in CELLS):
            raise StnbenchError(
                f"{where}: expected {{cell: {' or '.join(CELLS)}, units: N}}, got {args!r}"
            )
        units = _positive_int(args, "units", where)
        self.heads, self.glimpses = 1, True
        return RecurrentLocalization(features_net, features, args["cell"], units,
                                     self.positions), units

    def layer(
        self, kind: str, args: dict, shape: Shape, where: str, allow_classes: bool = False
    ) -> tuple[list[nn.Module], Shape]:
        """The modules for one layer entry, and the shape it produces from ``shape``."""
        spatial = len(shape) == 3
        if kind in ("conv", "maxpool", "dropout2d", "lcn") and not spatial:
            raise StnbenchError(f"{where}: {kind} needs a feature map, got a vector of {shape[0]}")
        if kind in ACTIVATIONS:
            return [ACTIVATIONS[kind]()], shape
        if kind in ("dropout", "dropout2d"):
            p = args.get("p", 0.5)
            if not isinstance(p, (int, float)) or not 0 <= p < 1:
                raise StnbenchError(f"{where}.p: {p!r} must be a probability in [0, 1)")
            return [nn.Dropout(p) if kind == "dropout" else nn.Dropout2d(p)], shape
        if kind == "lcn":
            size = _positive_int(args, "size", where, default=9)
            kernel = args.get("kernel", "box")
            if size % 2 == 0 or kernel not in LCN_KERNELS:
                raise StnbenchError(f"{where}: lcn needs an odd size and a kernel in {LCN_KERNELS}")
            return [LocalContrastNorm(size, kernel)], shape
        if kind == "linear":
            out = args.get("out")
            if out == CLASSES and allow_classes:
                out = self.spec.num_classes * self.heads
            elif out == CLASSES:
                raise StnbenchError(f"{where}.out: 'classes' is only for the network's last layer")
            out = _positive_int({"out": out}, "out", where)
            flatten = [nn.Flatten()] if spatial else []
            return [*flatten, nn.Linear(math.prod(shape), out)], (out,)
        channels, height, width = shape
        kernel = _positive_int(args, "kernel", where)
        if kind == "conv":
            out = _positive_int(args, "out", where)
            stride = _positive_int(args, "stride", where, default=1)
            padding = args.get("padding", 0)
            if not isinstance(padding, int) or padding < 0:
                raise StnbenchError(f"{where}.padding: {padding!r} must be a non-negative integer")
            module: nn.Module = nn.Conv2d(channels, out, kernel, stride, padding)
        else:
            out, padding = channels, 0
            stride = _positive_int(args, "stride", where, default=kernel)
            module = nn.MaxPool2d(kernel, stride)
        if min(height, width) + 2 * padding < kernel:
            raise StnbenchError(
                f"{where}: {kind} kernel {kernel} does not fit its {_shape_text(shape)} input "
                f"(input size {self.spec.input_size})"
            )
        size = [(s + 2 * padding - kernel) // stride + 1 for s in (height, width)]
        return [module], (out, *size)
