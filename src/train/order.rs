//! The order pairs are visited in: a fresh seeded shuffle each epoch, addressed by one
//! cursor, so a resumed run sees exactly the pairs an uninterrupted one would.

use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

pub struct DataOrder {
    seed: u64,
    len: usize,
    /// Pairs handed out so far, over all epochs.
    pub cursor: usize,
    epoch: Option<(usize, Vec<usize>)>,
}

impl DataOrder {
    pub fn new(seed: u64, len: usize, cursor: usize) -> Self {
        assert!(len > 0, "no pairs to order");
        DataOrder {
            seed,
            len,
            cursor,
            epoch: None,
        }
    }

    /// The next `count` pair indices, crossing into the next epoch when one runs out.
    pub fn take(&mut self, count: usize) -> Vec<usize> {
        (0..count).map(|_| self.next_index()).collect()
    }

    fn next_index(&mut self) -> usize {
        let epoch = self.cursor / self.len;
        if self.epoch.as_ref().map(|(e, _)| *e) != Some(epoch) {
            let mut permutation: Vec<usize> = (0..self.len).collect();
            let mut rng = StdRng::seed_from_u64(self.seed.wrapping_add(epoch as u64 * 0x9E37_79B9));
            permutation.shuffle(&mut rng);
            self.epoch = Some((epoch, permutation));
        }
        let index = self.epoch.as_ref().expect("set above").1[self.cursor % self.len];
        self.cursor += 1;
        index
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_epoch_is_a_permutation_and_resuming_repeats_it() {
        let mut order = DataOrder::new(7, 10, 0);
        let first: Vec<usize> = order.take(25);
        for epoch in first.chunks(10).take(2) {
            let mut sorted = epoch.to_vec();
            sorted.sort();
            assert_eq!(sorted, (0..10).collect::<Vec<_>>());
        }
        assert_ne!(first[..10], first[10..20], "epochs are reshuffled");
        let mut resumed = DataOrder::new(7, 10, 13);
        assert_eq!(resumed.take(12), first[13..25]);
    }
}
