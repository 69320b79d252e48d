"""PyTorch's torch.utils namespace: ``tapegrad.utils.data`` (Dataset, TensorDataset, DataLoader)."""

from . import data
