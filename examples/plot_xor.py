"""
The seed's XOR, done right
==========================

The blog post behind nncore trains a 2-2-1 network on XOR with CG and finite differences.
Here the same network gets the exact gradient, and restarts when a start ends on a plateau.
"""

import matplotlib.pyplot as plt
import numpy as np

import nncore
from nncore import plot
from nncore.seed import XOR_X, XOR_Y, seed_net

net = seed_net()
res = nncore.train(net, XOR_X, XOR_Y, method="CG", seed=1, n_starts=30, target=1 / 16)
print(res.fun, len(res.start_funs), "start(s)")
print(np.round(net.predict(res.x, XOR_X).ravel(), 3))

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 4))
plot.decision_boundary(net, res.x, XOR_X, XOR_Y, ax=left)
plot.loss_curve(res.history, ax=right)
