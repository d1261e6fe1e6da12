"""HR013: scikit-learn estimators and splitters that draw from NumPy's unseeded global state."""

from sklearn.cluster import KMeans
from sklearn.decomposition import PCA
from sklearn.ensemble import AdaBoostClassifier, RandomForestClassifier
from sklearn.linear_model import LogisticRegression
from sklearn.model_selection import KFold, train_test_split
from sklearn.tree import DecisionTreeClassifier


def models(features: object, labels: object, seed: int) -> list[object]:
    train, test = train_test_split(features, labels)  # expect: HR013
    return [
        train,
        test,
        RandomForestClassifier(n_estimators=10),  # expect: HR013
        RandomForestClassifier(random_state=None),  # expect: HR013
        RandomForestClassifier(random_state=seed),
        KFold(5, shuffle=True),  # expect: HR013
        KFold(5),
        KFold(5, shuffle=True, random_state=seed),
        LogisticRegression(),
        LogisticRegression(solver="saga"),  # expect: HR013
        PCA(n_components=2),
        PCA(n_components=2, svd_solver="randomized"),  # expect: HR013
        KMeans(3, random_state=seed),
        KMeans(3),  # expect: HR013
        KMeans(3, init=features),
        AdaBoostClassifier(DecisionTreeClassifier(max_depth=1), random_state=seed),
        train_test_split(features, shuffle=False),
    ]
