//! `ReachIndex`: where live promos reach, so `eligible/` visits only the
//! promos whose radius holds the shopper: O(log n + k), not a scan.
//!
//! One R-tree per segment (like the audience index), so a query walks only
//! the promos of the shopper's segments and the segment filter is the tree
//! itself. Each object is a *place*: one [`Disc`] on the unit sphere (a
//! store and a radius) with the promos of that segment that reach exactly
//! it, kept side by side; stores usually run several promos with the same
//! radius, so the disc is tested once for all of them. Its envelope is the
//! box of the centre ± the radius chord (every point of the disc lies in
//! it), and the exact test is [`Disc::chord_to`], the one rule of
//! [`eligibility`](crate::domain::eligibility). Bulk-loaded whenever the live
//! set or terms change; never edited in place (snapshots share it read-only).
//!
//! Each place also caches how many of its spots can be reserved, tagged with
//! the [`SoldOutEpoch`](super::counts::SoldOutEpoch) it was counted at, so a
//! query that only needs to count a far place reads one word, not every
//! spot's counts (see [`Snapshot::nearest`](super::snapshot)).

use std::collections::HashMap;
use std::ops::ControlFlow;
use std::sync::atomic::{AtomicU64, Ordering};

use rstar::{PointDistance, RStarInsertionStrategy, RTree, RTreeObject, RTreeParams, AABB};

use super::counts::LiveCounts;
use crate::domain::geo::Disc;

/// Wider nodes than rstar's default: queries here return many places each,
/// and scanning a wide node is cheaper than descending more levels.
struct WideNodes;

impl RTreeParams for WideNodes {
    const MIN_SIZE: usize = 6;
    const MAX_SIZE: usize = 16;
    const REINSERTION_COUNT: usize = 4;
    type DefaultInsertionStrategy = RStarInsertionStrategy;
}

/// One promo as indexed: what a query needs without touching the promo.
#[derive(Debug, Clone)]
pub struct Spot {
    pub promo_id: i64,
    /// Where the promo sits in the snapshot that owns this index.
    pub slot: u32,
    /// It ran when the index was built (see the snapshot's steady window).
    pub ran: bool,
    pub counts: LiveCounts,
}

/// The promos of one segment that reach one disc.
pub struct Place {
    reach: Disc,
    spots: Box<[Spot]>,
    runnable: RunnableCache,
}

impl Place {
    /// In id order.
    pub fn spots(&self) -> &[Spot] {
        &self.spots
    }

    /// How many spots ran at build time with units left, as counted at
    /// `epoch`; `None` if last counted at another epoch (or never).
    #[inline]
    pub fn runnable_at(&self, epoch: u64) -> Option<usize> {
        self.runnable.get(epoch)
    }

    /// Remembers `count` as counted by a reader that loaded `epoch` before
    /// reading any of the spots' counts.
    pub fn remember_runnable(&self, epoch: u64, count: usize) {
        self.runnable.set(epoch, count);
    }
}

/// One word: a set flag, the low bits of an epoch, and a count.
///
/// Only the epoch's low [`RunnableCache::EPOCH_BITS`] bits are kept: an entry
/// is mistaken for a fresh one only after exactly 2^39 sold-out flips, within
/// the life of one snapshot (which ends at the next change of terms).
#[derive(Default)]
struct RunnableCache(AtomicU64);

impl RunnableCache {
    const COUNT_BITS: u32 = 24;
    const EPOCH_BITS: u32 = 39;
    const COUNT_MASK: u64 = (1 << Self::COUNT_BITS) - 1;
    const EPOCH_MASK: u64 = (1 << Self::EPOCH_BITS) - 1;
    const SET: u64 = 1 << 63;

    fn tag(epoch: u64) -> u64 {
        Self::SET | (epoch & Self::EPOCH_MASK) << Self::COUNT_BITS
    }

    /// Relaxed is enough: an entry is trusted only if tagged with the epoch
    /// the caller loaded, and whoever tagged it loaded that epoch (Acquire)
    /// before reading the counts it summed.
    #[inline]
    fn get(&self, epoch: u64) -> Option<usize> {
        let word = self.0.load(Ordering::Relaxed);
        let count = word & Self::COUNT_MASK;
        (word & !Self::COUNT_MASK == Self::tag(epoch)).then_some(count as usize)
    }

    /// A count too large for the word is not cached.
    fn set(&self, epoch: u64, count: usize) {
        if let Ok(count) = u64::try_from(count) {
            if count <= Self::COUNT_MASK {
                self.0.store(Self::tag(epoch) | count, Ordering::Relaxed);
            }
        }
    }
}

impl RTreeObject for Place {
    type Envelope = AABB<[f64; 3]>;

    fn envelope(&self) -> Self::Envelope {
        let ([x, y, z], r) = (self.reach.center(), self.reach.radius_chord());
        AABB::from_corners([x - r, y - r, z - r], [x + r, y + r, z + r])
    }
}

impl PointDistance for Place {
    /// Squared distance from the disc to `point` (0 inside).
    fn distance_2(&self, point: &[f64; 3]) -> f64 {
        let [x, y, z] = self.reach.center();
        let chord =
            ((x - point[0]).powi(2) + (y - point[1]).powi(2) + (z - point[2]).powi(2)).sqrt();
        (chord - self.reach.radius_chord()).max(0.0).powi(2)
    }

    fn contains_point(&self, point: &[f64; 3]) -> bool {
        self.reach.chord_to(*point).is_some()
    }
}

/// The reaches of live promos, per targeted segment.
#[derive(Default)]
pub struct ReachIndex {
    trees: HashMap<i64, RTree<Place, WideNodes>>,
}

impl ReachIndex {
    /// Indexes each promo's spot under each of its segments, at its reach.
    pub fn build<S: IntoIterator<Item = i64>>(
        promos: impl Iterator<Item = (Disc, Spot, S)>,
    ) -> ReachIndex {
        let mut places: HashMap<(i64, [u64; 4]), (Disc, Vec<Spot>)> = HashMap::new();
        for (reach, spot, segment_ids) in promos {
            let mut segment_ids: Vec<i64> = segment_ids.into_iter().collect();
            // A promo is offered once per tree, however its segments were listed.
            segment_ids.sort_unstable();
            segment_ids.dedup();
            for segment_id in segment_ids {
                let place = places
                    .entry((segment_id, reach.key()))
                    .or_insert_with(|| (reach, Vec::new()));
                place.1.push(spot.clone());
            }
        }
        let mut per_segment: HashMap<i64, Vec<Place>> = HashMap::new();
        for ((segment_id, _), (reach, mut spots)) in places {
            // In id order: the ranking relies on it (see `visit`).
            spots.sort_unstable_by_key(|spot| spot.promo_id);
            let spots = spots.into_boxed_slice();
            per_segment.entry(segment_id).or_default().push(Place {
                reach,
                spots,
                runnable: RunnableCache::default(),
            });
        }
        ReachIndex {
            trees: per_segment
                .into_iter()
                .map(|(segment_id, places)| (segment_id, RTree::bulk_load_with_params(places)))
                .collect(),
        }
    }

    /// Calls `found` with every place of `segment_ids` (deduplicated, in
    /// order) whose reach holds `origin`, with its chord to `origin` and the
    /// segments visited before this place's tree: a promo of several of them
    /// is offered once per tree, and the caller keeps the first.
    pub fn visit(
        &self,
        segment_ids: &[i64],
        origin: [f64; 3],
        mut found: impl FnMut(&Place, f64, &[i64]),
    ) {
        for (position, segment_id) in segment_ids.iter().enumerate() {
            let Some(tree) = self.trees.get(segment_id) else {
                continue;
            };
            let earlier = &segment_ids[..position];
            let _ = tree.locate_all_at_point_int(&origin, |place| {
                if let Some(chord) = place.reach.chord_to(origin) {
                    found(place, chord, earlier);
                }
                ControlFlow::<()>::Continue(())
            });
        }
    }
}

#[cfg(test)]
impl ReachIndex {
    /// How many places hold a count cached at `epoch`.
    pub fn cached_places(&self, epoch: u64) -> usize {
        self.trees
            .values()
            .flat_map(|tree| tree.iter())
            .filter(|place| place.runnable_at(epoch).is_some())
            .count()
    }
}
