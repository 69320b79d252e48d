"""The course's PyTorch material, ported as plain functions for tests/test_pytorch_material.py.

Each port is written the way the course writes it (``torch.``, ``nn.``, ``F.``, ``optim.``), but
takes the library as an argument, ``lib``, a namespace with the attributes ``torch``, ``nn``, ``F``,
``optim``, ``Function``, ``Tensor``, ``DataLoader`` and ``TensorDataset``: the same code then runs on
PyTorch and on tapegrad (``import tapegrad as torch`` ...). Ports return plain Python values and
numpy arrays so the tests can compare the two runs.

- lab3: the custom Function for f(x1, x2), gradient descent, the five-point 2-2-1 network.
- lab4: the L-layer network with hand backprop in Delta matrices.
- homework: tensor basics and the finite-difference tables.
- blitz_tensors, blitz_autograd, blitz_nn, blitz_cifar: PyTorch's 60-minute blitz.
"""
