"""The blitz's tensor tutorial ported: factories, attributes, indexing, cat, products, sum/item,
in-place add_, and the numpy bridge that shares memory both ways."""

import numpy as np


def tensors_tutorial(lib):
    """Runs the tutorial's cells; returns what they print, as a dict of plain values."""
    torch = lib.torch
    seen = {}

    # Initialising a tensor: from data, from numpy, from another tensor, from a shape.
    data = [[1, 2], [3, 4]]
    x_data = torch.tensor(data)
    seen["x_data"] = x_data.tolist()
    seen["x_data_is_long"] = x_data.dtype == torch.int64

    np_array = np.array(data)
    x_np = torch.from_numpy(np_array)
    np_array[0, 0] = 10          # the tensor sees a change of the array ...
    x_np[1, 1] = 40              # ... and the array a change of the tensor
    seen["x_np_after_array_change"] = x_np.tolist()
    seen["np_array_after_tensor_change"] = np_array.tolist()

    x_ones = torch.ones_like(x_data)
    seen["x_ones"] = x_ones.tolist()
    seen["x_ones_is_long"] = x_ones.dtype == torch.long
    x_rand = torch.rand_like(x_data, dtype=torch.float)
    seen["x_rand_shape"] = tuple(x_rand.shape)
    seen["x_rand_is_float"] = x_rand.dtype == torch.float
    seen["x_rand_in_unit_interval"] = bool((x_rand >= 0).all()) and bool((x_rand < 1).all())

    shape = (2, 3,)
    rand_tensor = torch.rand(shape)
    ones_tensor = torch.ones(shape)
    zeros_tensor = torch.zeros(shape)
    seen["factory_shapes"] = [tuple(t.shape) for t in (rand_tensor, ones_tensor, zeros_tensor)]
    seen["ones_and_zeros"] = [ones_tensor.tolist(), zeros_tensor.tolist()]

    # Attributes.
    tensor = torch.rand(3, 4)
    seen["shape"] = tuple(tensor.shape)
    seen["shape_equals_tuple"] = tensor.shape == (3, 4)
    seen["dtype_is_float32"] = tensor.dtype == torch.float32

    # Indexing and slicing.
    tensor = torch.ones(4, 4)
    seen["first_row"] = tensor[0].tolist()
    seen["first_column"] = tensor[:, 0].tolist()
    seen["last_column"] = tensor[..., -1].tolist()
    tensor[:, 1] = 0
    seen["after_column_zeroed"] = tensor.tolist()

    # Joining.
    t1 = torch.cat([tensor, tensor, tensor], dim=1)
    seen["cat_shape"] = tuple(t1.shape)
    seen["cat"] = t1.tolist()

    # Arithmetic: three ways to a matrix product, two to an element-wise one.
    y1 = tensor @ tensor.T
    y2 = tensor.matmul(tensor.T)
    z1 = tensor * tensor
    z2 = tensor.mul(tensor)
    seen["matmul"] = y1.tolist()
    seen["matmul_agrees"] = y1.tolist() == y2.tolist()
    seen["mul"] = z1.tolist()
    seen["mul_agrees"] = z1.tolist() == z2.tolist()

    agg = tensor.sum()
    agg_item = agg.item()
    seen["agg_item"] = agg_item
    seen["agg_item_type"] = type(agg_item).__name__

    # In place.
    tensor.add_(5)
    seen["after_add_"] = tensor.tolist()

    # Bridge with numpy: tensor -> array ...
    t = torch.ones(5)
    n = t.numpy()
    t.add_(1)
    seen["numpy_view_after_add_"] = n.tolist()
    # ... and array -> tensor.
    n = np.ones(5)
    t = torch.from_numpy(n)
    np.add(n, 1, out=n)
    seen["from_numpy_after_np_add"] = t.tolist()
    return seen
