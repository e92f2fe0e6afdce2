//! tarun-ml: the compute half of tarun, in Candle.
//!
//! Data (CIFAR-10 reader, download, the embedded synthetic dataset, augmentation and loading), the
//! three networks of the study, training, checkpoints, task-arithmetic surgery and the study's
//! metrics. It knows nothing of manifests, caching or scheduling: callers hand it plain parameters.

pub mod checkpoint;
pub mod data;
pub mod device;
pub mod kernels;
pub mod metrics;
pub mod models;
pub mod surgery;
pub mod train;
pub mod unlearn;
