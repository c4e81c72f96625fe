# # Random forest on synthetic data
#
# A plain script: run it with `python fit.py`, or track it with
# `python -m tracker examples/fit.py -p n_estimators=100,max_depth=8`.
# Every bare name and unassigned call below is recorded.

from sklearn.datasets import make_classification
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import (
    ConfusionMatrixDisplay,
    PrecisionRecallDisplay,
    accuracy_score,
    f1_score,
    precision_score,
    recall_score,
)
from sklearn.model_selection import train_test_split

# parameters
n_estimators = 50
max_depth = None
criterion = "gini"
random_state = 0
n_samples = 10_000

X, y = make_classification(
    n_samples=n_samples, n_features=20, n_informative=8, random_state=random_state
)
X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=random_state)

model = RandomForestClassifier(
    n_estimators=n_estimators,
    max_depth=max_depth,
    criterion=criterion,
    random_state=random_state,
    n_jobs=1,
)
model.fit(X_train, y_train);
y_pred = model.predict(X_test)
y_score = model.predict_proba(X_test)[:, 1]

accuracy = accuracy_score(y_test, y_pred)
precision = precision_score(y_test, y_pred)
recall = recall_score(y_test, y_pred)
f1 = f1_score(y_test, y_pred)
accuracy
precision
recall
f1


# Each plot is drawn by a small function so it is recorded under that function's name.
def confusion_matrix(y_true, y_pred):
    return ConfusionMatrixDisplay.from_predictions(y_true, y_pred)


def precision_recall(y_true, y_score):
    return PrecisionRecallDisplay.from_predictions(y_true, y_score)


confusion_matrix(y_test, y_pred)

precision_recall(y_test, y_score)
