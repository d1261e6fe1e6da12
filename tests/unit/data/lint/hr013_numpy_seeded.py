"""HR013 near miss: random_state=None draws from NumPy's global RandomState, seeded here
before the estimators are built; the one built before the seed is still a finding."""

import numpy as np
from sklearn.ensemble import RandomForestClassifier

before = RandomForestClassifier()  # expect: HR013
np.random.seed(0)
after = RandomForestClassifier()
