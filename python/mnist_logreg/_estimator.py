"""``SoftmaxRegression``: the crate's SGD training loop as a scikit-learn classifier."""

import json
import math
import numbers
import os
import warnings

import numpy as np
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.utils.multiclass import check_classification_targets
from sklearn.utils.validation import check_is_fitted

from . import _core

try:  # scikit-learn >= 1.6
    from sklearn.utils.validation import validate_data as _validate_data
except ImportError:  # pragma: no cover - older scikit-learn

    def _validate_data(estimator, *args, **kwargs):
        return estimator._validate_data(*args, **kwargs)


_SHUFFLES = ("buffer", "epoch", "sequential")
_CLIPS = ("zero", "through")
_INITS = ("zeros", "ones")
_KERNELS = ("auto", "reference", "gemm", "fused", "fused_u8", "parallel", "parallel_u8")


class SoftmaxRegression(ClassifierMixin, BaseEstimator):
    """Multinomial logistic regression, ``softmax(X @ coef_.T + intercept_)``, trained by
    mini-batch SGD on the mnist-logreg crate's fused SIMD kernels (multithreaded, the GIL
    released).

    The loss is the batch's **summed** cross-entropy, as in the TensorFlow tutorial the crate
    reproduces, so ``learning_rate`` is per sample: the mean gradient's step is
    ``learning_rate × batch_size``.

    Parameters
    ----------
    learning_rate : float, default=0.001
        SGD step per sample.
    epochs : int, default=20
        Passes over the training set: ``ceil(epochs × n_samples / batch_size)`` steps, and at
        least ``min_steps``.
    min_steps : int, default=1000
        The fewest steps ``epochs`` gives: a small data set needs more passes than a large one
        (150 samples, 20 epochs: 20 steps).
    steps : int or None, default=None
        SGD steps; overrides ``epochs`` and ``min_steps`` when given (the tutorial: 1000).
    batch_size : int, default=256
        Samples per step (at most the number of samples).
    shuffle : {"epoch", "buffer", "sequential"}, default="epoch"
        A fresh permutation every epoch; the tutorial's streaming buffer; or file order.
    shuffle_buffer : int, default=5000
        Size of the streaming buffer of ``shuffle="buffer"``.
    clip_gradient : {"through", "zero"}, default="through"
        What a sample whose true-class probability fell below 1e-9 passes as gradient:
        ``p − onehot`` like an unclipped cross-entropy, or nothing (the tutorial, which can
        stall a class for good when ``init="ones"``).
    init : {"zeros", "ones"}, default="zeros"
        Initial ``coef_`` (``intercept_`` starts at 0); the tutorial uses ones.
    random_state : int or None, default=None
        Seed of the batch sampler; None is 0, so fits repeat exactly.
    kernel : str, default="auto"
        The crate's kernel: ``auto`` (``parallel_u8`` for uint8 X, ``parallel`` for float),
        or ``reference``, ``gemm``, ``fused``, ``fused_u8``, ``parallel``, ``parallel_u8``.
    simd : str, default="auto"
        Instruction set: ``auto`` (the widest of this CPU), ``avx512``, ``avx2``, ``sse2``,
        ``neon``, ``scalar``.
    threads : int, default=0
        Threads of the parallel kernels (0: one per core).
    callback : callable or None, default=None
        ``callback(step, loss, accuracy)`` every ``callback_every`` steps (the batch's loss
        and accuracy after the step); an exception it raises stops the fit and propagates.
    callback_every : int, default=50
        Steps between callbacks.
    scale_uint8 : bool or "warn", default="warn"
        True: uint8 X is read as pixels, ``x / 255`` (the crate's ``train`` on MNIST, with no
        float copy). False: uint8 X is numbers like any other dtype (converted to float32),
        so the same values as uint8 and as floats give the same model. "warn": True, with a
        FutureWarning at ``fit``; the default will become False. Float X is never scaled.

    Attributes
    ----------
    coef_ : ndarray of shape (n_classes, n_features), float32
    intercept_ : ndarray of shape (n_classes,), float32
    classes_ : ndarray of shape (n_classes,)
    n_features_in_ : int
    feature_names_in_ : ndarray of shape (n_features_in_,)
        Defined when X has feature names that are all strings (a DataFrame).
    n_iter_ : int
        SGD steps taken by the fits so far.

    Input X may be uint8 (with ``scale_uint8=True``: pixels 0–255, read as ``x / 255``
    exactly as the crate's ``train`` reads MNIST, without a float copy) or float (used as
    given, as float32). For tabular data, and for the exact optimum of scikit-learn's
    objective, use :class:`mnist_logreg.LogisticRegression`. Ctrl-C during
    ``fit`` stops at the end of the current step: the estimator keeps the model of that step
    (``n_iter_`` says which) and the KeyboardInterrupt propagates.
    """

    def __init__(
        self,
        *,
        learning_rate=0.001,
        epochs=20,
        min_steps=1000,
        steps=None,
        batch_size=256,
        shuffle="epoch",
        shuffle_buffer=5000,
        clip_gradient="through",
        init="zeros",
        random_state=None,
        kernel="auto",
        simd="auto",
        threads=0,
        callback=None,
        callback_every=50,
        scale_uint8="warn",
    ):
        self.learning_rate = learning_rate
        self.epochs = epochs
        self.min_steps = min_steps
        self.steps = steps
        self.batch_size = batch_size
        self.shuffle = shuffle
        self.shuffle_buffer = shuffle_buffer
        self.clip_gradient = clip_gradient
        self.init = init
        self.random_state = random_state
        self.kernel = kernel
        self.simd = simd
        self.threads = threads
        self.callback = callback
        self.callback_every = callback_every
        self.scale_uint8 = scale_uint8

    @classmethod
    def tutorial(cls, **overrides):
        """The TensorFlow tutorial's recipe: ``W = ones``, rate 0.01, 1000 steps of 256 from a
        5000-sample streaming shuffle buffer, clipped rows passing no gradient; what
        ``cargo run --release --bin train`` runs."""
        params = dict(
            learning_rate=0.01,
            steps=1000,
            batch_size=256,
            shuffle="buffer",
            shuffle_buffer=5000,
            clip_gradient="zero",
            init="ones",
            random_state=0,
            scale_uint8=True,
        )
        params.update(overrides)
        return cls(**params)

    def __sklearn_tags__(self):
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        tags.input_tags.sparse = False
        return tags

    # -- validation -------------------------------------------------------------------

    def _check_params(self):
        def count(name, value, minimum):
            if not isinstance(value, numbers.Integral) or isinstance(value, bool) or value < minimum:
                raise ValueError(f"{name} must be an integer of at least {minimum}, got {value!r}")

        rate = self.learning_rate
        if not isinstance(rate, numbers.Real) or not math.isfinite(rate) or rate <= 0:
            raise ValueError(f"learning_rate must be a finite number above 0, got {rate!r}")
        if self.steps is None:
            count("epochs", self.epochs, 1)
            count("min_steps", self.min_steps, 0)
        else:
            count("steps", self.steps, 1)
        count("batch_size", self.batch_size, 1)
        count("shuffle_buffer", self.shuffle_buffer, 1)
        count("threads", self.threads, 0)
        count("callback_every", self.callback_every, 1)
        for name, value, allowed in [
            ("shuffle", self.shuffle, _SHUFFLES),
            ("clip_gradient", self.clip_gradient, _CLIPS),
            ("init", self.init, _INITS),
            ("kernel", self.kernel, _KERNELS),
        ]:
            if value not in allowed:
                raise ValueError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")
        if self.scale_uint8 not in (True, False, "warn"):
            raise ValueError(f"scale_uint8 must be True, False or 'warn', got {self.scale_uint8!r}")
        if self.callback is not None and not callable(self.callback):
            raise ValueError("callback must be callable (step, loss, accuracy) or None")

    def _seed(self):
        if self.random_state is None:
            return 0
        if isinstance(self.random_state, numbers.Integral) and self.random_state >= 0:
            return int(self.random_state)
        raise ValueError(f"random_state must be None or an integer ≥ 0, got {self.random_state!r}")

    def _validate_X(self, X, reset, y=None, fitting=False):
        """X as the kernels read it: C-contiguous uint8 (kept as pixels, read as x / 255, when
        ``scale_uint8``) or float32."""
        kwargs = dict(
            accept_sparse=False,
            dtype=[np.float32, np.float64, np.uint8],
            order="C",
            reset=reset,
        )
        if y is None:
            X = _validate_data(self, X, **kwargs)
        else:
            X, y = _validate_data(self, X, y, **kwargs)
        if X.dtype == np.uint8 and self.scale_uint8 == "warn" and fitting:
            warnings.warn(
                "SoftmaxRegression reads uint8 X as pixels, x / 255; the default of "
                "scale_uint8 will become False (uint8 values read as numbers, like floats). "
                "Pass scale_uint8=True to keep the scaling, False to read the numbers "
                "(or mnist_logreg.LogisticRegression for tabular data)",
                FutureWarning,
                stacklevel=3,
            )
        if X.dtype != np.uint8 or self.scale_uint8 is False:
            with np.errstate(over="ignore"):
                X = np.ascontiguousarray(X, dtype=np.float32)
            if not np.isfinite(X).all():
                raise ValueError("X holds values too large for float32 (it is read as float32)")
        return X, y

    def _steps_for(self, n_samples, batch):
        if self.steps is not None:
            return int(self.steps)
        return max(int(self.min_steps), -(-int(self.epochs) * n_samples // batch))

    # -- training ---------------------------------------------------------------------

    def _run(self, X, y_index, coef, intercept, steps, start_step, seed):
        batch = min(int(self.batch_size), len(y_index))
        coef, intercept, reached, stopped = _core.fit(
            X,
            y_index,
            coef,
            intercept,
            steps=steps,
            start_step=start_step,
            batch_size=batch,
            learning_rate=float(self.learning_rate),
            seed=seed,
            shuffle=self.shuffle,
            shuffle_buffer=int(self.shuffle_buffer),
            clip_gradient=self.clip_gradient,
            kernel=self.kernel,
            simd=self.simd,
            threads=int(self.threads),
            callback=self.callback,
            callback_every=int(self.callback_every),
        )
        self.coef_ = coef
        self.intercept_ = intercept
        self.n_iter_ = getattr(self, "n_iter_", 0) + (reached - start_step)
        if stopped is not None:
            raise stopped
        return self

    def _class_indices(self, y):
        index = np.searchsorted(self.classes_, y)
        index = np.clip(index, 0, len(self.classes_) - 1)
        unknown = self.classes_[index] != y
        if unknown.any():
            raise ValueError(
                f"y holds labels not among the classes {list(self.classes_)}: "
                f"{sorted(set(np.asarray(y)[unknown].tolist()))[:5]}"
            )
        return index.astype(np.uint32)

    def _start(self, X, classes):
        self.classes_ = classes
        if len(classes) < 2:
            raise ValueError(
                f"SoftmaxRegression needs samples of at least 2 classes; y has one class only ({classes[0]!r})"
            )
        k, d = len(classes), X.shape[1]
        fill = 0.0 if self.init == "zeros" else 1.0
        self.n_iter_ = 0
        return np.full((k, d), fill, dtype=np.float32), np.zeros(k, dtype=np.float32)

    def fit(self, X, y):
        """Train from the initial model (``init``) for ``steps`` (or ``epochs``) SGD steps."""
        self._check_params()
        X, y = self._validate_X(X, reset=True, y=y, fitting=True)
        check_classification_targets(y)
        classes, y_index = np.unique(y, return_inverse=True)
        coef, intercept = self._start(X, classes)
        batch = min(int(self.batch_size), len(y))
        steps = self._steps_for(len(y), batch)
        self._partial_calls = 0
        return self._run(X, y_index.astype(np.uint32), coef, intercept, steps, 0, self._seed())

    def partial_fit(self, X, y, classes=None):
        """One more pass over ``X``, ``y`` (``ceil(n_samples / batch_size)`` SGD steps) from
        the current model. The first call fixes the classes: ``classes`` when given, else the
        labels of this ``y``."""
        self._check_params()
        first = not hasattr(self, "coef_")
        X, y = self._validate_X(X, reset=first, y=y, fitting=True)
        check_classification_targets(y)
        if first:
            labels = np.unique(y if classes is None else np.asarray(classes))
            coef, intercept = self._start(X, labels)
            self._partial_calls = 0
        else:
            coef, intercept = self.coef_, self.intercept_
        y_index = self._class_indices(y)
        batch = min(int(self.batch_size), len(y))
        steps = -(-len(y) // batch)
        # Each pass draws its own batches: the seed moves on with the number of passes.
        seed = self._seed() + self._partial_calls
        self._partial_calls += 1
        return self._run(X, y_index, coef, intercept, steps, 0, seed)

    # -- prediction -------------------------------------------------------------------

    def _prepared(self, X):
        check_is_fitted(self)
        X, _ = self._validate_X(X, reset=False)
        return X

    def _logits(self, X):
        X = self._prepared(X)
        x = X.astype(np.float64) / 255.0 if X.dtype == np.uint8 else X.astype(np.float64)
        return x @ self.coef_.T.astype(np.float64) + self.intercept_.astype(np.float64)

    def decision_function(self, X):
        """The logits ``X @ coef_.T + intercept_`` (for two classes: the second's minus the
        first's, as scikit-learn's binary classifiers give)."""
        logits = self._logits(X)
        if len(self.classes_) == 2:
            return logits[:, 1] - logits[:, 0]
        return logits

    def predict_log_proba(self, X):
        """Log of :meth:`predict_proba`, computed stably (log-sum-exp)."""
        logits = self._logits(X)
        shifted = logits - logits.max(axis=1, keepdims=True)
        return shifted - np.log(np.exp(shifted).sum(axis=1, keepdims=True))

    def predict_proba(self, X):
        """``softmax(X @ coef_.T + intercept_)`` per sample, columns in ``classes_`` order."""
        return np.exp(self.predict_log_proba(X))

    def predict(self, X):
        """The class of each sample, computed by the same kernel ``fit`` uses (so a model gives
        the crate's ``train`` the same answers)."""
        X = self._prepared(X)
        index = _core.predict(
            X,
            self.coef_,
            self.intercept_,
            kernel=self.kernel,
            simd=self.simd,
            threads=int(self.threads),
        )
        return self.classes_[index]

    # -- checkpoints ------------------------------------------------------------------

    def save(self, path):
        """Write the fitted model as the crate's safetensors checkpoint (``W`` as
        ``[features, classes]``, ``b``), readable by ``predict --model`` and ``train --load``;
        the classes and parameters go in its metadata."""
        check_is_fitted(self)
        metadata = {
            "python_classes": json.dumps(self.classes_.tolist()),
            "python_params": json.dumps(
                {k: v for k, v in self.get_params().items() if k != "callback"}
            ),
            "steps": str(self.n_iter_),
        }
        _core.save(os.fspath(path), self.coef_, self.intercept_, metadata)

    @classmethod
    def load(cls, path, **params):
        """A fitted estimator from a checkpoint written by :meth:`save` or by the crate's
        ``train --save`` (whose classes are ``0 … classes − 1``); ``params`` override the
        saved parameters."""
        coef, intercept, metadata = _core.load(os.fspath(path))
        saved = json.loads(metadata.get("python_params", "{}"))
        saved.update(params)
        est = cls(**{k: v for k, v in saved.items() if k in cls().get_params()})
        if "python_classes" in metadata:
            est.classes_ = np.asarray(json.loads(metadata["python_classes"]))
        else:
            est.classes_ = np.arange(coef.shape[0])
        est.coef_, est.intercept_ = coef, intercept
        est.n_features_in_ = coef.shape[1]
        est.n_iter_ = int(metadata.get("steps", "0"))
        est._partial_calls = 0
        return est
