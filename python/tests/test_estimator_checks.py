"""scikit-learn's own estimator checks on SoftmaxRegression and LogisticRegression."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from mnist_logreg import LogisticRegression, SoftmaxRegression


@parametrize_with_checks([SoftmaxRegression(), LogisticRegression()])
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
