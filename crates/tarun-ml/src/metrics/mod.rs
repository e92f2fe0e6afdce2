//! The study's metrics, each exactly as the seed defines it (docs/study.md §7), plus the corrected
//! variants that docs/study.md §10 asks for. Inputs are plain slices (logits as a row-major `N × C`
//! block, labels as `u32`), so nothing here depends on a model, a device or a manifest.
//!
//! | metric | docs/study.md | module | corrected variant (docs/study.md §10) |
//! |---|---|---|---|
//! | accuracy, per-class, forget/retain, confusion matrix | §7.1, §7.7, §4.5 | [`accuracy`](mod@accuracy) | integer counts (§10.2 item 21) |
//! | KL(retrained ‖ unlearned) | §7.2 | [`divergence`] | — |
//! | ZRF | §7.3 | [`divergence`] | several random teachers ([`zrf_multi`]) |
//! | entropy MIA AUC | §7.4 | [`mia`] | clean members and the retrained model's AUC (caller's inputs) |
//! | MIA-efficacy (confidence threshold) | §7.10 | [`mia_efficacy`] | — |
//! | over-forgetting | §7.5 | [`overforgetting`] | relative to the base, neighbour from confusions |
//! | Anamnesis Index | §7.6 | [`anamnesis`] | steps, censoring flag, retain tracking |
//! | t-SNE | §7.8 | [`tsne`](mod@tsne) | exact gradient instead of Barnes–Hut |
//! | time savings | §7.9 | [`timing`] | — |
//! | gaps to the retrained model, Avg. Gap, ToW, 95 % intervals | §7.10 | [`gap`] | — |

pub mod accuracy;
pub mod anamnesis;
pub mod divergence;
mod error;
pub mod gap;
mod logits;
pub mod mia;
pub mod mia_efficacy;
pub mod overforgetting;
pub mod timing;
pub mod tsne;

pub use accuracy::{
    ConfusionMatrix, ForgetRetain, Tally, accuracy, forget_retain_accuracy, per_class_accuracy,
};
pub use anamnesis::{
    AinEstimate, CurvePoint, RelearnConfig, RelearnCurve, ain_corrected, ain_seed, relearn,
    relearn_target, relearn_tracking_retain,
};
pub use divergence::{
    KlSplit, ZrfSummary, kl_forget_retain, kl_per_sample, mean_kl, zrf, zrf_multi,
};
pub use error::MetricsError;
pub use gap::{Gaps, Interval, MethodFigures, gaps, student_t_quantile};
pub use logits::Logits;
pub use mia::{auc, entropy_mia_auc, negative_entropy_scores};
pub use mia_efficacy::{
    MemberSide, ThresholdRule, mia_efficacy, shadow_subset, true_label_confidence,
};
pub use overforgetting::{
    OverForgetting, RelativeOverForgetting, confusion_neighbour, over_forgetting,
    over_forgetting_relative,
};
pub use timing::TimingBreakdown;
pub use tsne::{Embedding, TsneConfig, trustworthiness, tsne, tsne_logits};
