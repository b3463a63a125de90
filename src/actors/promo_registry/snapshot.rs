//! `LivePromos`: the registry's published, immutable read model, which
//! request handlers read directly (no mailbox hop).
//!
//! The registry is the only writer: it builds a new [`Snapshot`] after each
//! change of terms or lifecycle and swaps it in (`arc-swap`) before its
//! handler returns. Live counts are not copied in: each promo shares its
//! [`LiveCounts`] with its actor, so a stock change costs no rebuild and a
//! reader sees it as soon as the actor has written it (before the actor
//! answers the reservation that caused it).
//!
//! Window statuses only change at a promo's start or end (each occurrence's,
//! for a daily promo). Each snapshot
//! knows the steady window around the instant it was built, between the
//! nearest boundaries of any of its promos; inside it, whether a promo runs
//! is what [`FlashPromo::runs_at`] said at build time, kept beside its spot
//! in the index. Outside it (a boundary passed and the registry has not yet
//! republished), each candidate is asked `runs_at(now)` again.
//!
//! `eligible/` needs every match counted but only the nearest page ranked.
//! Once the page is full, a place farther than the farthest kept can add
//! nothing to it, so only how many of its spots can be reserved matters, and
//! each place caches that number per sold-out epoch (see [`Snapshot::nearest`]).

use std::collections::{BinaryHeap, HashMap};
use std::sync::Arc;

use actix::Addr;
use arc_swap::ArcSwap;
use chrono::{DateTime, Utc};

use super::catalogue::Entry;
use super::counts::{LiveCounts, SoldOutEpoch};
use super::spatial::{Place, ReachIndex, Spot};
use crate::actors::promo::PromoActor;
use crate::db::{JsonListing, Listing, PageWindow};
use crate::domain::eligibility::{AudienceMember, Shopper};
use crate::domain::geo::km_from_chord;
use crate::domain::promo::FlashPromo;
use crate::domain::promo_json::PromoJson;

/// The live promos, as last published; cheap to clone, shared by every worker.
#[derive(Clone)]
pub struct LivePromos(Arc<ArcSwap<Snapshot>>);

impl LivePromos {
    /// Nothing published yet.
    pub(super) fn new() -> LivePromos {
        LivePromos(Arc::new(ArcSwap::from_pointee(Snapshot::default())))
    }

    /// Replaces what readers see.
    pub(super) fn publish(&self, snapshot: Snapshot) {
        self.0.store(Arc::new(snapshot));
    }

    /// One page of the promos running at `now`, in id order.
    pub fn running(&self, now: DateTime<Utc>, window: PageWindow) -> Listing<FlashPromo> {
        self.0.load().running(now, window)
    }

    /// One page of the promos running at `now` that `member` may reserve,
    /// nearest first (then by id), with distances in km.
    pub fn eligible(
        &self,
        member: &AudienceMember,
        now: DateTime<Utc>,
        window: PageWindow,
    ) -> Listing<(FlashPromo, f64)> {
        self.0.load().eligible(member, now, window)
    }

    /// [`LivePromos::running`] as JSON, written from each promo's
    /// pre-rendered terms.
    pub fn running_json(&self, now: DateTime<Utc>, window: PageWindow) -> JsonListing {
        self.0.load().running_json(now, window)
    }

    /// [`LivePromos::eligible`] as JSON, each item with its `distance_km`.
    pub fn eligible_json(
        &self,
        member: &AudienceMember,
        now: DateTime<Utc>,
        window: PageWindow,
    ) -> JsonListing {
        self.0.load().eligible_json(member, now, window)
    }

    /// How many promos run now with units left (the `running_promos` gauge).
    pub(super) fn running_count(&self) -> usize {
        self.0.load().running_count()
    }

    /// The actor of a running promo, so a reservation can go straight to it.
    pub fn actor_of(&self, promo_id: i64) -> Option<Addr<PromoActor>> {
        self.0.load().actor_of(promo_id)
    }

    /// A live promo with its counts at `now`, if it is in the snapshot.
    pub fn promo(&self, promo_id: i64, now: DateTime<Utc>) -> Option<FlashPromo> {
        let snapshot = self.0.load();
        let listed = snapshot.listed(*snapshot.slots.get(&promo_id)?)?;
        Some(listed.current(now))
    }
}

/// One published state of the live promos.
#[derive(Default)]
pub struct Snapshot {
    /// In id order.
    promos: Vec<Listed>,
    slots: HashMap<i64, u32>,
    index: ReachIndex,
    steady: Steady,
    /// The epoch every indexed promo's counts bump, if they share one
    /// (they do when all come from the registry's slab); without it the
    /// places' counts are not cached.
    epoch: Option<SoldOutEpoch>,
}

/// A promo as published.
struct Listed {
    promo: Arc<FlashPromo>,
    json: Option<Arc<PromoJson>>,
    counts: LiveCounts,
    actor: Option<Addr<PromoActor>>,
    /// It ran at build time (valid inside the steady window).
    ran: bool,
}

impl Listed {
    fn current(&self, now: DateTime<Utc>) -> FlashPromo {
        self.counts.load().apply(&self.promo, now)
    }

    /// Appends the promo's JSON at `now` (with the shopper's distance, for
    /// `eligible/`) from its pre-rendered terms.
    fn write_json(&self, out: &mut Vec<u8>, now: DateTime<Utc>, distance_km: Option<f64>) {
        match &self.json {
            Some(json) => {
                let live = self.counts.load().live_fields(&self.promo, now);
                json.write(out, live, distance_km);
            }
            None => write_serialized(out, self.current(now), distance_km),
        }
    }
}

/// The promo serialized by serde, for one whose terms could not be
/// pre-rendered; `null` if that fails too, so the page stays valid JSON.
fn write_serialized(out: &mut Vec<u8>, promo: FlashPromo, distance_km: Option<f64>) {
    #[derive(serde::Serialize)]
    struct Item {
        #[serde(flatten)]
        promo: FlashPromo,
        #[serde(skip_serializing_if = "Option::is_none")]
        distance_km: Option<f64>,
    }
    let mut item = Vec::new();
    match serde_json::to_writer(&mut item, &Item { promo, distance_km }) {
        Ok(()) => out.extend_from_slice(&item),
        Err(_) => out.extend_from_slice(b"null"),
    }
}

/// About one promo's JSON, to size a page's buffer once.
const ITEM_BYTES: usize = 640;

/// A comma before every item but the first.
fn separate(out: &mut Vec<u8>, index: usize) {
    if index > 0 {
        out.push(b',');
    }
}

/// The instants around a build between which no promo starts or ends.
#[derive(Debug, Clone, Copy, Default)]
struct Steady {
    from: Option<DateTime<Utc>>,
    until: Option<DateTime<Utc>>,
}

impl Steady {
    fn around<'a>(promos: impl Iterator<Item = &'a FlashPromo>, now: DateTime<Utc>) -> Steady {
        let mut steady = Steady::default();
        let boundaries = promos
            .filter(|promo| promo.is_active)
            .flat_map(|promo| boundaries_around(promo, now));
        for boundary in boundaries {
            if boundary <= now {
                steady.from = steady.from.max(Some(boundary));
            } else if steady.until.is_none_or(|until| boundary < until) {
                steady.until = Some(boundary);
            }
        }
        steady
    }

    fn holds(&self, now: DateTime<Utc>) -> bool {
        self.from.is_none_or(|from| from <= now) && self.until.is_none_or(|until| now < until)
    }
}

/// The instants around `now` at which `promo` starts or stops running. A
/// daily promo gives its next change and, for the last one, `now` itself:
/// an earlier bound could only be later than the true one, so a read from
/// before the build asks `runs_at` again instead of trusting the build.
fn boundaries_around(promo: &FlashPromo, now: DateTime<Utc>) -> Vec<DateTime<Utc>> {
    if promo.daily_window.is_none() {
        return vec![promo.start_time, promo.end_time];
    }
    std::iter::once(now)
        .chain(promo.next_change_after(now))
        .collect()
}

impl Snapshot {
    /// The catalogue's promos as of `now`.
    pub(super) fn build<'a>(
        entries: impl Iterator<Item = &'a Entry<Addr<PromoActor>>>,
        now: DateTime<Utc>,
    ) -> Snapshot {
        let mut entries: Vec<&Entry<Addr<PromoActor>>> = entries.collect();
        entries.sort_unstable_by_key(|entry| entry.promo.id);
        let spots = entries.iter().zip(0u32..).filter_map(|(entry, slot)| {
            let reach = entry.reach.filter(|_| entry.promo.is_active)?;
            let ran = entry.promo.runs_at(now);
            let spot = Spot {
                promo_id: entry.promo.id,
                slot,
                ran,
                counts: entry.counts.clone(),
            };
            Some((reach, spot, entry.promo.segment_ids()))
        });
        let index = ReachIndex::build(spots);
        Snapshot {
            epoch: shared_epoch(entries.iter().map(|entry| &entry.counts)),
            steady: Steady::around(entries.iter().map(|entry| &*entry.promo), now),
            slots: entries
                .iter()
                .zip(0u32..)
                .map(|(entry, slot)| (entry.promo.id, slot))
                .collect(),
            promos: entries
                .into_iter()
                .map(|entry| Listed {
                    ran: entry.promo.runs_at(now),
                    promo: Arc::clone(&entry.promo),
                    json: entry.json.clone(),
                    counts: entry.counts.clone(),
                    actor: entry.actor.clone(),
                })
                .collect(),
            index,
        }
    }
}

/// The epoch of all `counts`, if it is one and the same.
fn shared_epoch<'a>(mut counts: impl Iterator<Item = &'a LiveCounts>) -> Option<SoldOutEpoch> {
    let epoch = counts.next()?.epoch().clone();
    counts
        .all(|counts| counts.epoch().is(&epoch))
        .then_some(epoch)
}

impl Snapshot {
    /// How many promos run at the build's instant with units left to sell.
    pub(super) fn running_count(&self) -> usize {
        self.promos
            .iter()
            .filter(|listed| listed.ran && !listed.counts.load().sold_out())
            .count()
    }

    /// Whether the promo in `slot` runs at `now` with units left to sell.
    fn runs(
        &self,
        slot: u32,
        ran: bool,
        counts: &LiveCounts,
        now: DateTime<Utc>,
        steady: bool,
    ) -> bool {
        let runs = if steady {
            ran
        } else {
            self.listed(slot)
                .is_some_and(|listed| listed.promo.runs_at(now))
        };
        runs && !counts.load().sold_out()
    }

    fn listed(&self, slot: u32) -> Option<&Listed> {
        self.promos.get(usize::try_from(slot).ok()?)
    }

    fn running(&self, now: DateTime<Utc>, window: PageWindow) -> Listing<FlashPromo> {
        let (total, page) = self.running_page(now, window);
        Listing {
            total,
            items: page.into_iter().map(|listed| listed.current(now)).collect(),
        }
    }

    fn running_json(&self, now: DateTime<Utc>, window: PageWindow) -> JsonListing {
        let (total, page) = self.running_page(now, window);
        let mut results = Vec::with_capacity(page.len() * ITEM_BYTES);
        for (index, listed) in page.into_iter().enumerate() {
            separate(&mut results, index);
            listed.write_json(&mut results, now, None);
        }
        JsonListing { total, results }
    }

    /// How many promos run at `now`, and the page of them `window` covers.
    fn running_page(&self, now: DateTime<Utc>, window: PageWindow) -> (i64, Vec<&Listed>) {
        let steady = self.steady.holds(now);
        let running: Vec<&Listed> = self
            .promos
            .iter()
            .zip(0u32..)
            .filter(|(listed, slot)| self.runs(*slot, listed.ran, &listed.counts, now, steady))
            .map(|(listed, _)| listed)
            .collect();
        let page = page_of(running, window, |listed| listed);
        (page.total, page.items)
    }

    fn eligible(
        &self,
        member: &AudienceMember,
        now: DateTime<Utc>,
        window: PageWindow,
    ) -> Listing<(FlashPromo, f64)> {
        let (total, page) = self.eligible_page(member, now, window);
        Listing {
            total,
            items: page
                .into_iter()
                .map(|(listed, distance_km)| (listed.current(now), distance_km))
                .collect(),
        }
    }

    fn eligible_json(
        &self,
        member: &AudienceMember,
        now: DateTime<Utc>,
        window: PageWindow,
    ) -> JsonListing {
        let (total, page) = self.eligible_page(member, now, window);
        let mut results = Vec::with_capacity(page.len() * ITEM_BYTES);
        for (index, (listed, distance_km)) in page.into_iter().enumerate() {
            separate(&mut results, index);
            listed.write_json(&mut results, now, Some(distance_km));
        }
        JsonListing { total, results }
    }

    /// Visits only the promos whose reach holds the member, keeping the
    /// nearest `offset + limit` while counting them all: how many there are,
    /// and the page `window` covers with each one's distance in km.
    fn eligible_page(
        &self,
        member: &AudienceMember,
        now: DateTime<Utc>,
        window: PageWindow,
    ) -> (i64, Vec<(&Listed, f64)>) {
        let Some(origin) = Shopper::new(member).origin() else {
            return (0, Vec::new());
        };
        let keep = window.offset.saturating_add(window.limit);
        let nearest = self.nearest(&member.segment_ids, origin, now, keep);
        let total = i64::try_from(nearest.seen).unwrap_or(i64::MAX);
        let ranked = nearest.into_sorted();
        let page = page_of(ranked, window, |ranked| {
            self.listed(ranked.slot)
                .map(|listed| (listed, km_from_chord(ranked.chord)))
        });
        (total, page.items.into_iter().flatten().collect())
    }

    /// The `keep` nearest promos running at `now` of `segment_ids` whose
    /// reach holds `origin`, and how many there are.
    ///
    /// A place farther than the farthest kept (with the page full) is only
    /// counted; inside the steady window and in the first segment's tree
    /// (nothing to deduplicate) that count is the place's cached one when
    /// it was taken at the current sold-out epoch.
    ///
    /// Why a cached count is never stale once a flip is visible: a writer
    /// writes the counts (Release), then bumps the epoch (Release). This
    /// query loads the epoch (Acquire) once, before reading any counts or
    /// cache. If it sees the bump, it sees the written counts, and a count
    /// cached before the bump carries an older epoch, so it is recounted.
    /// If it does not see the bump, the flip is concurrent with the query
    /// (its writer has not returned, so has not answered anyone), and either
    /// answer is one the query could have given. A count is cached with the
    /// epoch loaded before its counts were read, so it is at least as new
    /// as that epoch; a racing reader may overwrite a newer entry with an
    /// older one, which only costs a recount.
    fn nearest(
        &self,
        segment_ids: &[i64],
        origin: [f64; 3],
        now: DateTime<Utc>,
        keep: i64,
    ) -> Nearest {
        let steady = self.steady.holds(now);
        let epoch = self
            .epoch
            .as_ref()
            .filter(|_| steady)
            .map(SoldOutEpoch::current);
        let mut segment_ids = segment_ids.to_vec();
        segment_ids.sort_unstable();
        segment_ids.dedup();
        let mut nearest = Nearest::keeping(keep);
        self.index
            .visit(&segment_ids, origin, |place, chord, earlier| {
                if nearest.cannot_keep(chord) {
                    let epoch = epoch.filter(|_| earlier.is_empty());
                    nearest.count_many(self.runnable(place, epoch, earlier, now, steady));
                    return;
                }
                // One chord, ids ascending: once one is not kept, none after it
                // can be, and the rest are only counted.
                let mut ranks = true;
                for spot in place.spots() {
                    if self.reservable(spot, earlier, now, steady) {
                        let ranked = Ranked {
                            chord,
                            promo_id: spot.promo_id,
                            slot: spot.slot,
                        };
                        ranks = if ranks {
                            nearest.offer(ranked)
                        } else {
                            nearest.count()
                        };
                    }
                }
            });
        nearest
    }

    /// Whether `spot` runs at `now` with units left and was not offered from
    /// the tree of an `earlier` segment.
    #[inline]
    fn reservable(&self, spot: &Spot, earlier: &[i64], now: DateTime<Utc>, steady: bool) -> bool {
        self.runs(spot.slot, spot.ran, &spot.counts, now, steady)
            && (earlier.is_empty() || !self.targets_any(spot.slot, earlier))
    }

    /// How many of `place`'s spots are [reservable](Snapshot::reservable):
    /// the cached count if taken at `epoch`, else counted (and cached, with
    /// an `epoch`). The caller passes an epoch only inside the steady window
    /// with nothing `earlier`, loaded before this reads any counts.
    fn runnable(
        &self,
        place: &Place,
        epoch: Option<u64>,
        earlier: &[i64],
        now: DateTime<Utc>,
        steady: bool,
    ) -> usize {
        if let Some(count) = epoch.and_then(|epoch| place.runnable_at(epoch)) {
            return count;
        }
        let count = place
            .spots()
            .iter()
            .filter(|spot| self.reservable(spot, earlier, now, steady))
            .count();
        if let Some(epoch) = epoch {
            place.remember_runnable(epoch, count);
        }
        count
    }

    /// Whether the promo in `slot` targets any of `segment_ids` (it was
    /// already offered from one of their trees).
    fn targets_any(&self, slot: u32, segment_ids: &[i64]) -> bool {
        self.listed(slot).is_some_and(|listed| {
            listed
                .promo
                .segment_ids()
                .any(|id| segment_ids.contains(&id))
        })
    }

    fn actor_of(&self, promo_id: i64) -> Option<Addr<PromoActor>> {
        self.listed(*self.slots.get(&promo_id)?)?.actor.clone()
    }
}

/// An eligible promo's place in the ranking: nearest first, then by id.
#[derive(Debug, Clone, Copy)]
struct Ranked {
    chord: f64,
    promo_id: i64,
    slot: u32,
}

impl Ord for Ranked {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.chord
            .total_cmp(&other.chord)
            .then(self.promo_id.cmp(&other.promo_id))
    }
}

impl PartialOrd for Ranked {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Ranked {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other).is_eq()
    }
}

impl Eq for Ranked {}

/// The `keep` nearest of the promos offered (a bounded max-heap: the
/// farthest kept is dropped first), and how many were offered.
struct Nearest {
    keep: usize,
    heap: BinaryHeap<Ranked>,
    seen: usize,
}

impl Nearest {
    fn keeping(keep: i64) -> Nearest {
        Nearest {
            keep: usize::try_from(keep).unwrap_or(0),
            heap: BinaryHeap::new(),
            seen: 0,
        }
    }

    /// Counts `ranked` and keeps it if it is among the nearest so far: true
    /// when kept.
    #[inline]
    fn offer(&mut self, ranked: Ranked) -> bool {
        self.seen += 1;
        if self.heap.len() < self.keep {
            self.heap.push(ranked);
            return true;
        }
        match self.heap.peek_mut() {
            Some(mut farthest) if ranked < *farthest => {
                *farthest = ranked;
                true
            }
            _ => false,
        }
    }

    /// Whether nothing at `chord` can be kept: the heap is full and its
    /// farthest is nearer (at the same chord, the promo id decides).
    #[inline]
    fn cannot_keep(&self, chord: f64) -> bool {
        self.heap.len() >= self.keep
            && self
                .heap
                .peek()
                .is_none_or(|farthest| chord.total_cmp(&farthest.chord).is_gt())
    }

    /// Counts `offered` promos known not to be kept.
    #[inline]
    fn count_many(&mut self, offered: usize) {
        self.seen += offered;
    }

    /// Counts one promo known not to be kept: false.
    #[inline]
    fn count(&mut self) -> bool {
        self.seen += 1;
        false
    }

    fn into_sorted(self) -> Vec<Ranked> {
        self.heap.into_sorted_vec()
    }
}

/// Cuts one page out of a sorted listing, building only that page.
fn page_of<T, U>(items: Vec<T>, window: PageWindow, finish: impl Fn(T) -> U) -> Listing<U> {
    let total = i64::try_from(items.len()).unwrap_or(i64::MAX);
    let page = items
        .into_iter()
        .skip(usize::try_from(window.offset).unwrap_or(usize::MAX))
        .take(usize::try_from(window.limit).unwrap_or(0))
        .map(finish)
        .collect();
    Listing { total, items: page }
}

#[cfg(test)]
mod tests;
