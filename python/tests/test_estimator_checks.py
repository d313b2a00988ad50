"""scikit-learn's own estimator checks on SoftmaxRegression and LogisticRegression."""

from sklearn.utils.estimator_checks import parametrize_with_checks

from mnist_logreg import LogisticRegression, SoftmaxRegression


def expected_failures(estimator):
    if isinstance(estimator, LogisticRegression):
        # The solver computes in float32: weighted and repeated rows reach the same optimum
        # to ~1e-6 in the probabilities (measured 5.7e-6 relative at most), the check asks
        # rtol=1e-7. test_logistic.py checks sample weights against the f64 optimum instead.
        return {
            "check_sample_weight_equivalence_on_dense_data": (
                "a float32 solver: equal to ~1e-6, the check asks 1e-7"
            )
        }
    return {}


@parametrize_with_checks(
    [SoftmaxRegression(), LogisticRegression()], expected_failed_checks=expected_failures
)
def test_sklearn_compatible_estimator(estimator, check):
    check(estimator)
