//! The per-job peak memory watch. A test binary of its own: no other test's jobs run in this
//! process meanwhile, so "shared" is only what the test makes it.

use tarun_core::memory::{PeakWatch, peak_mb};

#[test]
fn a_watch_sees_its_allocation_and_knows_when_it_shared_the_process() {
    if peak_mb().is_none() {
        return; // not Linux: nothing is measured
    }
    let alone = PeakWatch::start();
    let before = alone.peak().expect("measured").mb;
    // 64 MB, written so that it is resident.
    let block = vec![1u8; 64 << 20];
    std::hint::black_box(&block);
    let after = alone.peak().expect("measured");
    assert!(
        after.mb >= before + 60.0,
        "peak {} MB after a 64 MB allocation, {before} MB before",
        after.mb
    );
    assert!(!after.shared);
    let other = PeakWatch::start();
    assert!(alone.peak().expect("measured").shared);
    assert!(other.peak().expect("measured").shared);
    drop((alone, other, block));
    // The first job after the others ended resets the mark: the freed block no longer counts.
    let next = PeakWatch::start();
    let fresh = next.peak().expect("measured");
    assert!(!fresh.shared);
    assert!(
        fresh.mb < after.mb - 30.0,
        "peak {} MB after the reset, {} MB before it",
        fresh.mb,
        after.mb
    );
}
