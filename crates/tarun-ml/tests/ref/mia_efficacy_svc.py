"""scikit-learn's SVC(C=3, gamma="auto", kernel="rbf") on 1-D confidences, the classifier of Jia et
al.'s evaluation/SVC_MIA.py, for the constants in crates/tarun-ml/tests/metrics_mia_efficacy.rs
(`mia_efficacy_matches_sklearn_svc_*`). tarun fits the best single threshold instead
(docs/study.md §7.10); the test checks that both cut in the same place to within 0.04 and call the
same share of targets non-members wherever the targets avoid the band between the two cuts.

Data: 60 shadow members and 60 shadow non-members from closed formulas (so Rust rebuilds them
without pasting arrays), i = (k + 0.5) / 60 for k = 0..59:
  separable:   members 0.8 + 0.2 i,       non-members 0.05 + 0.55 i    (gap 0.6..0.8)
  overlapping: members 1 - 0.4 i^3,       non-members 1 - 0.9 i^0.7
targets: the 41 points 0, 0.025, ..., 1 (overlapping case: without 0.7 and 0.725, which lie
between the two cuts).

Run: python3 crates/tarun-ml/tests/ref/mia_efficacy_svc.py  (numpy, scikit-learn 1.x)
"""
import numpy as np
from sklearn.svm import SVC

n = 60
i = (np.arange(n) + 0.5) / n
grid = np.linspace(0, 1, 41)
cases = {
    "separable": (0.8 + 0.2 * i, 0.05 + 0.55 * i, grid),
    "overlapping": (1 - 0.4 * i**3, 1 - 0.9 * i**0.7,
                    grid[(grid < 0.69) | (grid > 0.74)]),
}
for name, (members, non, targets) in cases.items():
    X = np.r_[members, non].reshape(-1, 1)
    y = np.r_[np.ones(n), np.zeros(n)]
    clf = SVC(C=3, gamma="auto", kernel="rbf").fit(X, y)
    fine = np.linspace(0, 1, 100001).reshape(-1, 1)
    pred = clf.predict(fine)
    cuts = fine[np.nonzero(np.diff(pred))[0], 0]
    # MIA-efficacy as SVC_MIA.py computes it for the forget set: 1 - mean(predict) (x 100).
    efficacy = 100 * (1 - clf.predict(targets.reshape(-1, 1)).mean())
    print(f"{name}: cuts {cuts} (non-member below: {pred[0] == 0}), "
          f"targets {len(targets)}, efficacy {efficacy!r}")
