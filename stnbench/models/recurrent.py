"""Recurrent spatial transformers and sequence outputs (Sønderby et al. 2015, arXiv 1509.05329).

A recurrent localization net reads features of the whole image once and runs a recurrent
cell for one step per output position, the same features as every step's input; each step's
state is regressed to one transformation. The enclosing ``SpatialTransformer`` then samples
one glimpse per step, and the layers that follow classify every glimpse with the same weights.
"""

from torch import Tensor, nn

CELLS: dict[str, type[nn.RNNBase]] = {"gru": nn.GRU, "lstm": nn.LSTM}


class RecurrentLocalization(nn.Module):
    """[N, ...] images -> [N * steps, units] states, image-major (image n's step t is row
    ``n * steps + t``), the order in which ``Positions`` reads the classified glimpses back."""

    def __init__(self, features: nn.Module, size: int, cell: str, units: int, steps: int) -> None:
        super().__init__()
        self.features = features
        self.cell = CELLS[cell](size, units, batch_first=True)
        self.steps = steps

    def forward(self, x: Tensor) -> Tensor:
        features = self.features(x).flatten(1)
        states, _ = self.cell(features[:, None].expand(-1, self.steps, -1).contiguous())
        return states.reshape(-1, states.shape[-1])


class Positions(nn.Module):
    """Class scores [N * positions, classes] (one row per glimpse) or [N, positions * classes]
    (one head per position) -> [N, positions, classes]."""

    def __init__(self, positions: int, classes: int) -> None:
        super().__init__()
        self.positions = positions
        self.classes = classes

    def forward(self, x: Tensor) -> Tensor:
        return x.reshape(-1, self.positions, self.classes)

    def extra_repr(self) -> str:
        return f"positions={self.positions}, classes={self.classes}"
