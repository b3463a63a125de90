//! `LiveCounts`: one promo's quantity, held and sold units, shared between the
//! promo's actor (the only writer while it runs) and every reader of the
//! published snapshots.
//!
//! The three counts are packed into one `AtomicU64` (21 bits each), so a
//! reader always sees a triple that one write left: `available + held + sold
//! = quantity` can never be torn, and reading costs one load, with no lock
//! and no snapshot rebuild per stock change. 21 bits hold 2,097,151, more
//! than [`MAX_QUANTITY`] units; a larger value saturates.
//!
//! The registry hands counts out of a [`CountsSlab`]: blocks of 64 side by
//! side, so an `eligible/` query reading thousands of promos' counts touches
//! a few cache lines instead of one scattered allocation per promo (measured:
//! that miss was most of a 10,000-promo query). Slots are not reused; a block
//! is freed when the last promo using it is gone.
//!
//! `sold_total` (every occurrence's sales, unbounded by the 21 bits) sits in
//! a second cell beside the packed one: it is only shown, never summed with
//! the others, so reading it a moment apart from them tears nothing.
//!
//! A slab also keeps a [`SoldOutEpoch`], shared by every count it hands
//! out: each write that turns a promo sold out, or back, bumps it after the
//! counts are written, so a reader that cached a sold-out-dependent figure
//! can tell whether it still holds with one load.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use crate::domain::promo::{status_at, FlashPromo, MAX_QUANTITY};
use crate::domain::promo_json::LiveFields;

const BITS: u32 = 21;
const MASK: u64 = (1 << BITS) - 1;
// The packing must hold every count a promo can have.
const _: () = assert!(MAX_QUANTITY as u64 <= MASK);

/// One promo's counts (of its counted occurrence), as one write left them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Counts {
    pub quantity: u32,
    pub held: u32,
    pub sold: u32,
    /// Units sold over every occurrence.
    pub sold_total: u32,
}

impl Counts {
    /// The counts a promo was read with.
    pub fn of(promo: &FlashPromo) -> Counts {
        Counts {
            quantity: promo.quantity,
            held: promo.held,
            sold: promo.sold,
            sold_total: promo.sold_total,
        }
    }

    /// `promo` with these counts, and its `available` and status at `now`.
    pub fn apply(self, promo: &FlashPromo, now: DateTime<Utc>) -> FlashPromo {
        let mut promo = promo.clone();
        promo.quantity = self.quantity;
        promo
            .with_counts(self.held, self.sold, now)
            .with_sold_total(self.sold_total)
    }

    /// The fields of `promo`'s JSON these counts decide, at `now` (what
    /// [`Counts::apply`] would set, without copying the promo).
    pub fn live_fields(self, promo: &FlashPromo, now: DateTime<Utc>) -> LiveFields {
        let occurrence = promo.schedule().current_or_next(now);
        LiveFields {
            quantity: self.quantity,
            held: self.held,
            sold: self.sold,
            sold_total: self.sold_total,
            status: status_at(promo.is_active, occurrence, self.quantity, self.sold, now),
            occurrence,
        }
    }

    /// Every unit sold: the `sold_out` status of
    /// [`status_at`](crate::domain::promo::status_at) inside the window.
    pub fn sold_out(self) -> bool {
        self.sold >= self.quantity
    }

    fn pack(self) -> u64 {
        let field = |count: u32| u64::from(count).min(MASK);
        field(self.quantity) | field(self.held) << BITS | field(self.sold) << (2 * BITS)
    }

    fn unpack(packed: u64) -> Counts {
        // Each field is masked to 21 bits, so it fits a u32.
        let field = |shift: u32| ((packed >> shift) & MASK) as u32;
        Counts {
            quantity: field(0),
            held: field(BITS),
            sold: field(2 * BITS),
            sold_total: 0,
        }
    }
}

/// Slots per block (a power of two: a slot index is masked into range).
const BLOCK: usize = 64;

/// Counts side by side, with the epoch of the slab that made them.
#[derive(Debug)]
struct Block {
    cells: [AtomicU64; BLOCK],
    totals: [AtomicU64; BLOCK],
    epoch: SoldOutEpoch,
}

/// How many times any count of one slab flipped between sold out and not:
/// cheap to clone, every clone the same counter.
#[derive(Debug, Clone, Default)]
pub struct SoldOutEpoch(Arc<AtomicU64>);

impl SoldOutEpoch {
    /// The flips so far. Acquire: a reader that sees a flip's bump sees the
    /// counts that flip wrote, so it loads this before reading counts.
    #[inline]
    pub fn current(&self) -> u64 {
        self.0.load(Ordering::Acquire)
    }

    /// Whether `other` is this very counter (not just the same value).
    pub fn is(&self, other: &SoldOutEpoch) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }

    /// Counts the flip from `old` to `new`, if it is one. Called after the
    /// counts are written (Release), so the bump is seen only with them.
    fn note(&self, old: u64, new: u64) {
        if Counts::unpack(old).sold_out() != Counts::unpack(new).sold_out() {
            self.0.fetch_add(1, Ordering::Release);
        }
    }
}

/// Hands out live counts side by side.
#[derive(Debug, Default)]
pub struct CountsSlab {
    block: Option<Arc<Block>>,
    next: usize,
    epoch: SoldOutEpoch,
}

impl CountsSlab {
    /// New live counts starting at `counts`.
    pub fn allocate(&mut self, counts: Counts) -> LiveCounts {
        let block = match &self.block {
            Some(block) if self.next < BLOCK => Arc::clone(block),
            _ => {
                let block = Arc::new(Block {
                    cells: std::array::from_fn(|_| AtomicU64::new(0)),
                    totals: std::array::from_fn(|_| AtomicU64::new(0)),
                    epoch: self.epoch.clone(),
                });
                self.block = Some(Arc::clone(&block));
                self.next = 0;
                block
            }
        };
        let live = LiveCounts {
            block,
            slot: self.next,
        };
        self.next += 1;
        live.store(counts);
        live
    }
}

/// The live counts of one promo: a handle on its slot, cheap to clone.
#[derive(Debug, Clone)]
pub struct LiveCounts {
    block: Arc<Block>,
    slot: usize,
}

impl LiveCounts {
    /// Counts starting at `counts`, in a block of their own.
    pub fn new(counts: Counts) -> LiveCounts {
        CountsSlab::default().allocate(counts)
    }

    fn cell(&self) -> &AtomicU64 {
        &self.block.cells[self.slot & (BLOCK - 1)]
    }

    fn total(&self) -> &AtomicU64 {
        &self.block.totals[self.slot & (BLOCK - 1)]
    }

    /// The epoch every write of these counts bumps when it flips sold out.
    pub fn epoch(&self) -> &SoldOutEpoch {
        &self.block.epoch
    }

    /// The counts as the last write left them.
    pub fn load(&self) -> Counts {
        let counts = Counts::unpack(self.cell().load(Ordering::Acquire));
        let total = self.total().load(Ordering::Acquire);
        Counts {
            sold_total: u32::try_from(total).unwrap_or(u32::MAX),
            ..counts
        }
    }

    /// Replaces every count.
    pub fn store(&self, counts: Counts) {
        self.total()
            .store(u64::from(counts.sold_total), Ordering::Release);
        let new = counts.pack();
        let old = self.cell().swap(new, Ordering::AcqRel);
        self.block.epoch.note(old, new);
    }

    /// Changes the quantity and keeps the held and sold units, which the
    /// promo's actor may be writing meanwhile.
    pub fn set_quantity(&self, quantity: u32) {
        let with_quantity = |packed| {
            Counts {
                quantity,
                ..Counts::unpack(packed)
            }
            .pack()
        };
        let updated = self
            .cell()
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |packed| {
                Some(with_quantity(packed))
            });
        if let Ok(old) = updated {
            self.block.epoch.note(old, with_quantity(old));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::occurrence::Occurrence;
    use crate::domain::promo::{status_at, PromoStatus};
    use chrono::{Duration, Utc};

    fn counts(quantity: u32, held: u32, sold: u32) -> Counts {
        Counts {
            quantity,
            held,
            sold,
            sold_total: sold,
        }
    }

    #[test]
    fn counts_read_back_as_written_up_to_the_largest_quantity() {
        let live = LiveCounts::new(counts(MAX_QUANTITY, 7, MAX_QUANTITY - 7));
        assert_eq!(live.load(), counts(MAX_QUANTITY, 7, MAX_QUANTITY - 7));
        live.store(counts(3, 0, 2));
        assert_eq!(live.load(), counts(3, 0, 2));
    }

    #[test]
    fn a_count_too_large_to_pack_saturates_instead_of_spilling_into_another() {
        let live = LiveCounts::new(counts(u32::MAX, 1, 2));
        assert_eq!(live.load(), counts(MASK as u32, 1, 2));
    }

    #[test]
    fn counts_from_one_slab_are_independent_across_blocks() {
        let mut slab = CountsSlab::default();
        let all: Vec<LiveCounts> = (0..150)
            .map(|held| slab.allocate(counts(200, held, 0)))
            .collect();
        all[70].store(counts(200, 0, 9));
        for (held, live) in (0..150).zip(&all) {
            let expected = if held == 70 {
                counts(200, 0, 9)
            } else {
                counts(200, held, 0)
            };
            assert_eq!(live.load(), expected);
        }
    }

    #[test]
    fn setting_the_quantity_keeps_held_and_sold() {
        let live = LiveCounts::new(counts(10, 4, 5));
        live.set_quantity(20);
        assert_eq!(live.load(), counts(20, 4, 5));
    }

    #[test]
    fn sold_out_agrees_with_the_promo_status() {
        let now = Utc::now();
        let occurrence = Some(Occurrence {
            start: now - Duration::hours(1),
            end: now + Duration::hours(1),
        });
        let status =
            |counts: Counts| status_at(true, occurrence, counts.quantity, counts.sold, now);
        for counts in [counts(3, 0, 3), counts(3, 1, 2), counts(2, 0, 5)] {
            assert_eq!(counts.sold_out(), status(counts) == PromoStatus::SoldOut);
        }
    }

    #[test]
    fn the_epoch_moves_only_when_a_count_flips_sold_out_and_back() {
        let mut slab = CountsSlab::default();
        let (one, other) = (
            slab.allocate(counts(3, 0, 0)),
            slab.allocate(counts(3, 0, 0)),
        );
        assert!(one.epoch().is(other.epoch()));
        let epoch = one.epoch().clone();
        let start = epoch.current();
        one.store(counts(3, 1, 1));
        assert_eq!(epoch.current(), start, "still units left");
        other.store(counts(3, 0, 3));
        assert_eq!(epoch.current(), start + 1, "sold out");
        other.store(counts(3, 0, 3));
        assert_eq!(epoch.current(), start + 1, "no flip");
        other.set_quantity(4);
        assert_eq!(epoch.current(), start + 2, "more units: back on sale");
        one.set_quantity(1);
        assert_eq!(epoch.current(), start + 3, "fewer units: sold out");
        assert!(!LiveCounts::new(counts(1, 0, 0)).epoch().is(&epoch));
    }

    #[test]
    fn a_reader_never_sees_a_torn_triple_while_the_writer_moves_units() {
        let live = LiveCounts::new(counts(1_000, 0, 0));
        let writer = {
            let live = live.clone();
            std::thread::spawn(move || {
                for step in 0..200_000u32 {
                    let held = step % 1_000;
                    live.store(counts(1_000, held, 1_000 - held));
                }
            })
        };
        let mut reads = 0u64;
        while !writer.is_finished() || reads == 0 {
            let seen = live.load();
            assert!(seen.held + seen.sold == seen.quantity || seen.held + seen.sold == 0);
            reads += 1;
        }
        writer.join().unwrap();
    }
}
