"""Train image classifiers whose every forward and backward step runs through the registered implementations.

backend.py  which implementation each (op, pass) uses, with per-op overrides and documented fallbacks
layers.py   Dense, Conv2d, MaxPool2d, ReLU, Sigmoid, Flatten and the two losses: forward/backward via the backend
network.py  a network (layers + loss) and plain SGD through the registered sgd op
models.py   the model zoo (mlp1, mlp2, their -bce variants, thesis-0..4, lenet) and its default hyperparameters
data.py     digits, MNIST (IDX), CIFAR-10 (pickle), synthetic; split, resize, channel fitting, normalisation
train.py    the training loop, per-epoch CSV and plot;  checkpoint.py  --save/--resume
bench.py    train-bench: ms per training step on every backend, PyTorch eager as the peer
cli.py      the `train` and `train-bench` subcommands of `python -m harness`

No autograd library is involved: backpropagation is the chain rule of the thesis (seed 003, §2.5-§2.6 and §3),
each layer calling the backward pass of its op.
"""
