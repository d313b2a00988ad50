"""scikit-learn's own estimator checks on SoftmaxRegression."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from mnist_logreg import SoftmaxRegression


@parametrize_with_checks([SoftmaxRegression()])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
