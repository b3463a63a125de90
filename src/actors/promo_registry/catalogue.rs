//! `Catalogue`: what the registry knows of every live promo (active and not
//! over, or still owned by an actor), and the rules that merge the registry's
//! own changes with loads from PostgreSQL.
//!
//! Plain data: the actor handle is a type parameter (`Addr<PromoActor>` in the
//! registry, a number in the tests), so nothing here needs actix. Each entry
//! keeps its promo's terms behind an `Arc` (a published snapshot shares them
//! without copying) and its [`LiveCounts`], which the promo's actor writes
//! while it runs and the registry writes only when no actor does (the counts
//! of a load, or a new quantity).
//!
//! Every local change (create, edit, delete, stock report) bumps the
//! generation; a load knows the generation it began at, never overrides a
//! promo changed after that, nor brings back one deleted since.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;

use chrono::{DateTime, Utc};

use super::counts::{Counts, CountsSlab, LiveCounts};
use super::lifecycle;
use crate::domain::eligibility::reach_of;
use crate::domain::geo::Disc;
use crate::domain::promo::FlashPromo;
use crate::domain::promo_json::PromoJson;

/// What the catalogue keeps per promo.
#[derive(Debug)]
pub struct Entry<A> {
    /// The terms; its count fields are not read (the live ones are `counts`).
    pub promo: Arc<FlashPromo>,
    /// Its terms as JSON, rendered once per change of terms (`None` only if
    /// rendering failed; readers then serialize the promo themselves).
    pub json: Option<Arc<PromoJson>>,
    /// Where it reaches, computed once per change of terms.
    pub reach: Option<Disc>,
    pub counts: LiveCounts,
    pub actor: Option<A>,
    /// Watchers were told it stopped running (reset when it runs again).
    pub end_told: bool,
    /// The start of the occurrence its actor was started (or moved on) for;
    /// `None` for an actor started only to settle holds.
    pub occurrence: Option<DateTime<Utc>>,
    changed: Changed,
}

impl<A> Entry<A> {
    fn new(promo: FlashPromo, changed: Changed, slab: &mut CountsSlab) -> Entry<A> {
        Entry {
            reach: reach_of(&promo),
            json: render(&promo),
            counts: slab.allocate(Counts::of(&promo)),
            promo: Arc::new(promo),
            actor: None,
            end_told: false,
            occurrence: None,
            changed,
        }
    }

    fn set_terms(&mut self, promo: FlashPromo) {
        // New terms that move the start of the occurrence running now keep
        // it the same occurrence (re-keyed): its actor does not begin anew.
        let moved = self
            .promo
            .schedule()
            .rekeyed_at(&promo.schedule(), Utc::now());
        if let Some((from, to)) = moved {
            if self.occurrence == Some(from) {
                self.occurrence = Some(to);
            }
        }
        self.reach = reach_of(&promo);
        self.json = render(&promo);
        self.promo = Arc::new(promo);
    }

    /// The promo with its live counts and status at `now`.
    pub fn current(&self, now: DateTime<Utc>) -> FlashPromo {
        self.counts.load().apply(&self.promo, now)
    }

    /// Marks the promo's end as told: true the first time.
    pub fn tell_end(&mut self) -> bool {
        !std::mem::replace(&mut self.end_told, true)
    }
}

/// A promo whose actor must learn its new terms.
#[derive(Debug)]
pub struct Redefinition<A> {
    pub actor: A,
    pub promo: FlashPromo,
}

/// What applying a load changed beyond the catalogue itself.
#[derive(Debug)]
pub struct Applied<A> {
    /// Running promos whose terms changed elsewhere.
    pub redefined: Vec<Redefinition<A>>,
    /// Promos deleted elsewhere, each with its actor if it had one.
    pub deleted: Vec<(i64, Option<A>)>,
}

/// The live promos, by id.
#[derive(Debug)]
pub struct Catalogue<A> {
    entries: HashMap<i64, Entry<A>>,
    generations: Generations,
    slab: CountsSlab,
}

impl<A> Default for Catalogue<A> {
    fn default() -> Self {
        Catalogue {
            entries: HashMap::new(),
            generations: Generations::default(),
            slab: CountsSlab::default(),
        }
    }
}

impl<A: Clone> Catalogue<A> {
    pub fn get(&self, promo_id: i64) -> Option<&Entry<A>> {
        self.entries.get(&promo_id)
    }

    pub fn get_mut(&mut self, promo_id: i64) -> Option<&mut Entry<A>> {
        self.entries.get_mut(&promo_id)
    }

    pub fn iter(&self) -> impl Iterator<Item = &Entry<A>> + '_ {
        self.entries.values()
    }

    pub fn iter_mut(&mut self) -> impl Iterator<Item = &mut Entry<A>> + '_ {
        self.entries.values_mut()
    }

    /// The generation a load beginning now starts at.
    pub fn generation(&self) -> u64 {
        self.generations.current
    }

    /// The ids known, and those a live actor owns.
    pub fn known_and_owned(&self) -> (Vec<i64>, Vec<i64>) {
        let known = self.entries.keys().copied().collect();
        let owned = self
            .entries
            .iter()
            .filter(|(_, entry)| entry.actor.is_some())
            .map(|(promo_id, _)| *promo_id)
            .collect();
        (known, owned)
    }

    /// A promo created or changed here (after the change was committed);
    /// nothing for one deleted first. A running promo keeps its live counts
    /// and takes the new quantity; its actor is handed the new terms.
    pub fn change(&mut self, promo: FlashPromo) -> Option<Redefinition<A>> {
        if self.generations.is_removed(promo.id) {
            return None;
        }
        let terms = self.generations.bump();
        let Some(entry) = self.entries.get_mut(&promo.id) else {
            let changed = Changed { terms, counts: 0 };
            let entry = Entry::new(promo, changed, &mut self.slab);
            self.entries.insert(entry.promo.id, entry);
            return None;
        };
        entry.changed.terms = terms;
        let redefined = match &entry.actor {
            Some(actor) => {
                entry.counts.set_quantity(promo.quantity);
                Some(Redefinition {
                    actor: actor.clone(),
                    promo: promo.clone(),
                })
            }
            None => {
                entry.counts.store(Counts::of(&promo));
                None
            }
        };
        entry.set_terms(promo);
        redefined
    }

    /// A promo's actor reported new counts (it wrote them itself).
    pub fn counts_reported(&mut self, promo_id: i64) -> Option<&mut Entry<A>> {
        if !self.entries.contains_key(&promo_id) {
            return None;
        }
        let generation = self.generations.bump();
        let entry = self.entries.get_mut(&promo_id)?;
        entry.changed.counts = generation;
        Some(entry)
    }

    /// Forgets a deleted promo for good: its actor, if it had one.
    pub fn remove(&mut self, promo_id: i64) -> Option<A> {
        self.generations.remove(promo_id);
        self.entries.remove(&promo_id)?.actor
    }

    /// Applies a load of the live promos that began at generation `started`.
    pub fn apply_loaded(&mut self, promos: Vec<FlashPromo>, started: u64) -> Applied<A> {
        let loaded: HashSet<i64> = promos.iter().map(|promo| promo.id).collect();
        let redefined = promos
            .into_iter()
            .filter_map(|promo| self.take_loaded(promo, started))
            .collect();
        // Known when the load began and missing from it: deleted elsewhere.
        let missing: Vec<i64> = self
            .entries
            .iter()
            .filter(|(promo_id, entry)| {
                !loaded.contains(promo_id) && entry.changed.gone_if_missing(started)
            })
            .map(|(promo_id, _)| *promo_id)
            .collect();
        let deleted = missing
            .into_iter()
            .map(|promo_id| (promo_id, self.remove(promo_id)))
            .collect();
        self.generations.applied(started);
        Applied { redefined, deleted }
    }

    /// Takes one promo of a load, unless the registry changed or deleted it since.
    fn take_loaded(&mut self, promo: FlashPromo, started: u64) -> Option<Redefinition<A>> {
        if self.generations.is_removed(promo.id) {
            return None;
        }
        let Some(entry) = self.entries.get_mut(&promo.id) else {
            let entry = Entry::new(promo, Changed::default(), &mut self.slab);
            self.entries.insert(entry.promo.id, entry);
            return None;
        };
        match entry.changed.verdict(started, entry.actor.is_some()) {
            Loaded::Ignore => return None,
            Loaded::Take => entry.counts.store(Counts::of(&promo)),
            Loaded::TakeTerms => entry.counts.set_quantity(promo.quantity),
        }
        let redefined = match &entry.actor {
            Some(actor) if !same_terms(&entry.promo, &promo) => Some(Redefinition {
                actor: actor.clone(),
                promo: promo.clone(),
            }),
            _ => None,
        };
        entry.set_terms(promo);
        redefined
    }

    /// Forgets the promos over and without an actor.
    pub fn retain_live(&mut self, now: DateTime<Utc>) {
        self.entries
            .retain(|_, entry| lifecycle::keeps(&entry.promo, entry.actor.is_some(), now));
    }
}

/// When the registry last changed a promo on its own knowledge (an HTTP
/// change, a stock report), as registry generations.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Changed {
    terms: u64,
    counts: u64,
}

/// What a load may do to a promo it read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Loaded {
    /// Terms and counts.
    Take,
    /// The terms only: the counts in memory are newer.
    TakeTerms,
    /// Nothing: the promo changed after the load began.
    Ignore,
}

impl Changed {
    /// What a load that began at generation `started` may take; a live actor
    /// owns the counts of its promo.
    fn verdict(self, started: u64, has_actor: bool) -> Loaded {
        if self.terms > started {
            Loaded::Ignore
        } else if has_actor || self.counts > started {
            Loaded::TakeTerms
        } else {
            Loaded::Take
        }
    }

    /// Whether a promo known when a load began, but missing from it, was
    /// deleted (not created or changed after the load read the database).
    fn gone_if_missing(self, started: u64) -> bool {
        self.terms <= started
    }
}

/// Counts local changes to promos, and remembers deleted ones until no load
/// that read them before their removal can still be applied.
#[derive(Debug, Default)]
struct Generations {
    /// Bumped by every local change; a load remembers the value it began at.
    current: u64,
    /// Deleted promos and the generation of their removal.
    removed: HashMap<i64, u64>,
}

impl Generations {
    /// A new generation, for one local change.
    fn bump(&mut self) -> u64 {
        self.current += 1;
        self.current
    }

    /// The promo was deleted: no load nor late change may bring it back.
    fn remove(&mut self, promo_id: i64) {
        let generation = self.bump();
        self.removed.insert(promo_id, generation);
    }

    fn is_removed(&self, promo_id: i64) -> bool {
        self.removed.contains_key(&promo_id)
    }

    /// A load that began at `started` was applied: removals before it are
    /// forgotten (no load still in flight read those promos).
    fn applied(&mut self, started: u64) {
        self.removed.retain(|_, removed_at| *removed_at > started);
    }
}

/// True when two reads of a promo agree on everything but the live counts.
fn same_terms(known: &FlashPromo, loaded: &FlashPromo) -> bool {
    let counts = |promo: &FlashPromo| {
        promo
            .clone()
            .with_counts(0, 0, promo.created_at)
            .with_sold_total(0)
    };
    counts(known) == counts(loaded)
}

/// The promo's terms as JSON; a failure is logged and leaves readers to
/// serialize the promo themselves.
fn render(promo: &FlashPromo) -> Option<Arc<PromoJson>> {
    match PromoJson::of(promo) {
        Ok(json) => Some(Arc::new(json)),
        Err(error) => {
            tracing::error!(promo_id = promo.id, %error, "could not render a promo as JSON");
            None
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::lifecycle::tests::{at, promo};
    use super::*;

    fn counts(entry: &Entry<u8>) -> (u32, u32, u32) {
        let counts = entry.counts.load();
        (counts.quantity, counts.held, counts.sold)
    }

    fn running(catalogue: &mut Catalogue<u8>, promo_id: i64, actor: u8) {
        catalogue.change(promo(promo_id));
        catalogue.get_mut(promo_id).unwrap().actor = Some(actor);
    }

    #[test]
    fn a_change_to_a_running_promo_redefines_its_actor_and_keeps_its_live_counts() {
        let mut catalogue = Catalogue::default();
        running(&mut catalogue, 1, 9);
        catalogue.get(1).unwrap().counts.store(Counts {
            quantity: 5,
            held: 2,
            sold: 1,
            sold_total: 1,
        });
        let mut bigger = promo(1);
        bigger.quantity = 8;
        let redefined = catalogue.change(bigger).unwrap();
        assert_eq!((redefined.actor, redefined.promo.quantity), (9, 8));
        assert_eq!(counts(catalogue.get(1).unwrap()), (8, 2, 1));
        let current = catalogue.get(1).unwrap().current(at(18));
        assert_eq!((current.available, current.held, current.sold), (5, 2, 1));
    }

    #[test]
    fn a_change_to_a_promo_without_an_actor_takes_its_counts() {
        let mut catalogue: Catalogue<u8> = Catalogue::default();
        let mut sold = promo(1);
        sold.sold = 3;
        assert!(catalogue.change(sold).is_none());
        assert_eq!(counts(catalogue.get(1).unwrap()), (5, 0, 3));
    }

    #[test]
    fn a_load_never_brings_back_a_promo_deleted_after_it_began() {
        let mut catalogue: Catalogue<u8> = Catalogue::default();
        catalogue.change(promo(1));
        let started = catalogue.generation();
        assert_eq!(catalogue.remove(1), None);
        catalogue.change(promo(1));
        let applied = catalogue.apply_loaded(vec![promo(1)], started);
        assert!(catalogue.get(1).is_none());
        assert!(applied.deleted.is_empty() && applied.redefined.is_empty());
    }

    #[test]
    fn a_load_takes_counts_only_where_no_actor_or_newer_report_owns_them() {
        let mut catalogue = Catalogue::default();
        catalogue.change(promo(1));
        running(&mut catalogue, 2, 7);
        let started = catalogue.generation();
        let mut loaded = vec![promo(1), promo(2)];
        for promo in &mut loaded {
            promo.sold = 4;
        }
        let applied = catalogue.apply_loaded(loaded, started);
        assert_eq!(counts(catalogue.get(1).unwrap()), (5, 0, 4));
        assert_eq!(counts(catalogue.get(2).unwrap()), (5, 0, 0));
        assert!(applied.redefined.is_empty(), "the terms are the same");
    }

    #[test]
    fn a_load_redefines_a_running_promo_whose_terms_changed_elsewhere() {
        let mut catalogue = Catalogue::default();
        running(&mut catalogue, 2, 7);
        let started = catalogue.generation();
        let mut moved = promo(2);
        moved.max_distance_km = 5.0;
        let applied = catalogue.apply_loaded(vec![moved], started);
        assert_eq!(applied.redefined.len(), 1);
        assert_eq!(catalogue.get(2).unwrap().promo.max_distance_km, 5.0);
    }

    #[test]
    fn a_known_promo_missing_from_a_load_is_deleted_with_its_actor() {
        let mut catalogue = Catalogue::default();
        running(&mut catalogue, 1, 3);
        let started = catalogue.generation();
        catalogue.change(promo(2));
        let applied = catalogue.apply_loaded(Vec::new(), started);
        assert_eq!(applied.deleted, vec![(1, Some(3))]);
        assert!(catalogue.get(2).is_some(), "created after the load began");
    }

    #[test]
    fn an_over_promo_goes_once_its_actor_is_gone() {
        let mut catalogue = Catalogue::default();
        running(&mut catalogue, 1, 3);
        catalogue.retain_live(at(20));
        assert!(catalogue.get(1).is_some());
        catalogue.get_mut(1).unwrap().actor = None;
        catalogue.retain_live(at(20));
        assert!(catalogue.get(1).is_none());
    }

    #[test]
    fn an_end_is_told_once() {
        let mut catalogue: Catalogue<u8> = Catalogue::default();
        catalogue.change(promo(1));
        let entry = catalogue.get_mut(1).unwrap();
        assert!(entry.tell_end());
        assert!(!entry.tell_end());
    }

    #[test]
    fn a_deleted_promo_stays_removed_until_a_load_begun_after_its_removal_is_applied() {
        let mut generations = Generations::default();
        let started_before = generations.bump();
        generations.remove(8);
        let started_after = generations.current;
        generations.applied(started_before);
        assert!(generations.is_removed(8), "the old load read it");
        generations.applied(started_after);
        assert!(!generations.is_removed(8));
    }

    #[test]
    fn a_load_never_overrides_terms_changed_after_it_began() {
        let changed = Changed {
            terms: 5,
            counts: 0,
        };
        assert_eq!(changed.verdict(4, false), Loaded::Ignore);
        assert_eq!(changed.verdict(5, false), Loaded::Take);
        assert_eq!(changed.verdict(9, false), Loaded::Take);
    }

    #[test]
    fn a_load_keeps_counts_reported_after_it_began_or_owned_by_an_actor() {
        let changed = Changed {
            terms: 1,
            counts: 7,
        };
        assert_eq!(changed.verdict(6, false), Loaded::TakeTerms);
        assert_eq!(changed.verdict(7, false), Loaded::Take);
        assert_eq!(changed.verdict(7, true), Loaded::TakeTerms);
    }

    #[test]
    fn a_promo_missing_from_a_load_is_deleted_unless_created_or_changed_after_it_began() {
        let created_later = Changed {
            terms: 3,
            counts: 0,
        };
        assert!(!created_later.gone_if_missing(2));
        assert!(created_later.gone_if_missing(3));
        let traded_later = Changed {
            terms: 1,
            counts: 9,
        };
        assert!(
            traded_later.gone_if_missing(2),
            "its stock says nothing of its row"
        );
    }
}
