"""
Checking a gradient you wrote yourself
======================================

:func:`nncore.check_gradient` checks any ``fun``/``jac`` pair, not only nncore's: here
scipy's Rosenbrock function and its Hessian-vector product.  The default profile costs about
two evaluations per coordinate and runs the gradient's Taylor test only where the coordinates
leave something open; ``profile="thorough"`` always runs it, so that it can be drawn.
"""

import numpy as np
from scipy.optimize import rosen, rosen_der, rosen_hess_prod

import nncore
from nncore import plot

x0 = np.array([-1.2, 1.0, 0.5])
print(nncore.check_gradient(rosen, rosen_der, x0, hessp=rosen_hess_prod))
report = nncore.check_gradient(rosen, rosen_der, x0, hessp=rosen_hess_prod, profile="thorough")
print(report)
plot.taylor(report)
