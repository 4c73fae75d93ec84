"""
Checking a gradient you wrote yourself
======================================

:func:`nncore.check_gradient` checks any ``fun``/``jac`` pair, not only nncore's: here
scipy's Rosenbrock function and its Hessian-vector product, with the Taylor test drawn.
"""

import numpy as np
from scipy.optimize import rosen, rosen_der, rosen_hess_prod

import nncore
from nncore import plot

report = nncore.check_gradient(rosen, rosen_der, np.array([-1.2, 1.0, 0.5]), hessp=rosen_hess_prod)
print(report)
plot.taylor(report)
