//! The in-memory dataset: images as raw CHW bytes plus their labels.

use super::{IMAGE_BYTES, NUM_CLASSES};

/// Labelled 32x32 RGB images held as bytes: image `i` is `images[i*3072..(i+1)*3072]`, three
/// planes (R, G, B) of 32 rows of 32 pixels, exactly the CIFAR-10 record layout.
///
/// Share it between loaders by wrapping it in an `Arc`; subsets copy only the selected images
/// (3 KB each), which is cheap next to training on them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Dataset {
    images: Vec<u8>,
    labels: Vec<u8>,
}

impl Dataset {
    /// Builds a dataset from `labels.len()` images laid out back to back.
    ///
    /// # Panics
    /// If `images` does not hold exactly 3072 bytes per label or a label is not below 10: both
    /// are programming errors here, as the readers validate files before building.
    pub fn new(images: Vec<u8>, labels: Vec<u8>) -> Self {
        assert_eq!(
            images.len(),
            labels.len() * IMAGE_BYTES,
            "3072 image bytes per label"
        );
        assert!(
            labels.iter().all(|&l| usize::from(l) < NUM_CLASSES),
            "labels are class indices"
        );
        Self { images, labels }
    }

    /// Number of images.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no images.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The 3072 CHW bytes of image `i`.
    pub fn image(&self, i: usize) -> &[u8] {
        &self.images[i * IMAGE_BYTES..(i + 1) * IMAGE_BYTES]
    }

    /// The label of image `i`.
    pub fn label(&self, i: usize) -> u8 {
        self.labels[i]
    }

    /// All images, back to back.
    pub fn images(&self) -> &[u8] {
        &self.images
    }

    /// All labels, in image order.
    pub fn labels(&self) -> &[u8] {
        &self.labels
    }

    /// The images at `indices`, in that order (repeats allowed).
    pub fn subset(&self, indices: &[usize]) -> Self {
        let mut images = Vec::with_capacity(indices.len() * IMAGE_BYTES);
        for &i in indices {
            images.extend_from_slice(self.image(i));
        }
        let labels = indices.iter().map(|&i| self.labels[i]).collect();
        Self { images, labels }
    }

    /// The images whose class is in `only` (every class when `only` is empty) and not in
    /// `exclude`, in their original order.
    pub fn filter_classes(&self, only: &[u8], exclude: &[u8]) -> Self {
        let keep = |l: &u8| (only.is_empty() || only.contains(l)) && !exclude.contains(l);
        let indices: Vec<usize> = (0..self.len()).filter(|&i| keep(&self.labels[i])).collect();
        self.subset(&indices)
    }

    /// The first `k` images of each class, in their original order.
    pub fn first_per_class(&self, k: usize) -> Self {
        let mut taken = [0usize; NUM_CLASSES];
        let indices: Vec<usize> = (0..self.len())
            .filter(|&i| {
                let t = &mut taken[usize::from(self.labels[i])];
                *t += 1;
                *t <= k
            })
            .collect();
        self.subset(&indices)
    }

    /// How many images each class has, indexed by label.
    pub fn class_counts(&self) -> [usize; NUM_CLASSES] {
        let mut counts = [0; NUM_CLASSES];
        for &l in &self.labels {
            counts[usize::from(l)] += 1;
        }
        counts
    }

    /// Appends another dataset's images after this one's.
    pub fn extend(&mut self, other: &Self) {
        self.images.extend_from_slice(&other.images);
        self.labels.extend_from_slice(&other.labels);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Image `i` is filled with byte `i`, so subsets can be checked by content.
    fn numbered(labels: &[u8]) -> Dataset {
        let images = (0..labels.len())
            .flat_map(|i| [i as u8; IMAGE_BYTES])
            .collect();
        Dataset::new(images, labels.to_vec())
    }

    #[test]
    fn subset_keeps_images_with_their_labels() {
        let ds = numbered(&[3, 1, 4, 1, 5]);
        let s = ds.subset(&[4, 0, 4]);
        assert_eq!(s.labels(), &[5, 3, 5]);
        assert_eq!(s.image(0)[0], 4);
        assert_eq!(s.image(1)[IMAGE_BYTES - 1], 0);
        assert_eq!(s.len(), 3);
    }

    #[test]
    fn filters_by_only_and_exclude() {
        let ds = numbered(&[0, 1, 2, 8, 8, 9]);
        assert_eq!(ds.filter_classes(&[8], &[]).labels(), &[8, 8]);
        assert_eq!(ds.filter_classes(&[], &[8]).labels(), &[0, 1, 2, 9]);
        assert_eq!(ds.filter_classes(&[0, 8], &[8]).labels(), &[0]);
        assert_eq!(ds.filter_classes(&[], &[]), ds);
        let f = ds.filter_classes(&[9], &[]);
        assert_eq!(f.image(0)[7], 5, "image 5 moved with its label");
    }

    #[test]
    fn counts_and_caps_per_class() {
        let ds = numbered(&[0, 1, 0, 1, 0, 2]);
        assert_eq!(ds.class_counts()[..3], [3, 2, 1]);
        let capped = ds.first_per_class(2);
        assert_eq!(capped.labels(), &[0, 1, 0, 1, 2]);
        assert_eq!(capped.image(4)[0], 5);
    }

    #[test]
    #[should_panic(expected = "3072 image bytes per label")]
    fn rejects_mismatched_lengths() {
        Dataset::new(vec![0; 10], vec![0]);
    }
}
