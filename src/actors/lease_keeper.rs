//! `LeaseKeeper` (cluster mode): keeps this instance's ownership leases
//! (`db::leases`) and tells the registries what they own.
//!
//! The registries say what they want owned ([`Want`]: the promos that need
//! an actor, the campaigns that are open); the keeper claims what is free,
//! renews what it holds every [`RENEW_EVERY`], gives back what is no longer
//! wanted, and reports each gain and loss ([`LeaseChanged`]). A loss found at
//! renewal (another instance took over while this one was paused or cut off)
//! makes the registry stop that actor without writing; the database would
//! refuse its writes anyway.
//!
//! Leases spread by rendezvous hashing: for each free key, the live instance
//! with the highest hash of (instance, key) claims it at once; any other live
//! instance claims it once it has stayed free for [`CLAIM_GRACE`], so a key
//! whose preferred instance is gone or slow is still taken over within a few
//! seconds.

use std::collections::hash_map::DefaultHasher;
use std::collections::{HashMap, HashSet};
use std::hash::{Hash, Hasher};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;

use crate::cluster::Cluster;
use crate::db::leases::{self, Fence, LeaseKey, LeaseKind, Renewal};
use crate::db::{DbError, DbPool};
use crate::telemetry::prometheus;

/// How often leases are renewed and free ones looked for.
pub const RENEW_EVERY: Duration = Duration::from_secs(1);
/// How long a free key waits for its preferred instance before any takes it.
const CLAIM_GRACE: Duration = Duration::from_secs(2);
/// How long NATS may be away before this instance stops renewing: cut off
/// from the others, it cannot answer their forwarded calls, so its leases
/// should pass to an instance that can (a brief reconnect moves nothing).
const NATS_GRACE: Duration = leases::LEASE_TTL;
/// How long a lease is kept before it may be handed to its preferred instance.
const SETTLED_FOR: Duration = Duration::from_secs(30);
/// The shortest gap between two hand-overs of one instance.
const HAND_OVER_EVERY: Duration = Duration::from_secs(5);

/// A lease was gained (`fence` set) or lost (`None`).
#[derive(Message, Debug, Clone)]
#[rtype(result = "()")]
pub struct LeaseChanged {
    pub key: LeaseKey,
    pub fence: Option<Fence>,
}

/// What a registry wants owned now, of one kind (replaces its last want).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Want {
    pub kind: LeaseKind,
    pub object_ids: HashSet<i64>,
}

/// Whom to tell of one kind's leases.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Subscribe {
    pub kind: LeaseKind,
    pub recipient: Recipient<LeaseChanged>,
}

/// Renews (and so learns of losses) now rather than at the next tick.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Renew;

/// Gives back every lease (a clean shutdown); answered once done.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ReleaseAll;

/// The keeper.
pub struct LeaseKeeper {
    pool: DbPool,
    me: Arc<str>,
    owned: HashMap<LeaseKey, i64>,
    wanted: HashMap<LeaseKind, HashSet<i64>>,
    subscribers: HashMap<LeaseKind, Recipient<LeaseChanged>>,
    /// When each wanted key was first seen free (for [`CLAIM_GRACE`]).
    free_since: HashMap<LeaseKey, Instant>,
    /// The live instances at the last renewal.
    instances: Vec<String>,
    /// A renewal is in flight.
    renewing: bool,
    /// A claim pass is in flight; another is due after it.
    claiming: bool,
    again: bool,
    owned_gauge: prometheus::GaugeShare,
    /// Whose connection to the others decides whether to keep renewing.
    cluster: Option<Cluster>,
    nats_down_since: Option<Instant>,
    /// Shutting down: the leases were given back; nothing more is renewed or claimed.
    leaving: bool,
    /// When each held lease was taken (for hand-overs).
    owned_since: HashMap<LeaseKey, Instant>,
    last_hand_over: Option<Instant>,
}

impl LeaseKeeper {
    pub fn new(pool: DbPool, me: Arc<str>) -> LeaseKeeper {
        LeaseKeeper {
            pool,
            instances: vec![me.to_string()],
            me,
            owned: HashMap::new(),
            wanted: HashMap::new(),
            subscribers: HashMap::new(),
            free_since: HashMap::new(),
            renewing: false,
            claiming: false,
            again: false,
            owned_gauge: prometheus::GaugeShare::new(prometheus::OWNED_PROMOS),
            cluster: None,
            nats_down_since: None,
            leaving: false,
            owned_since: HashMap::new(),
            last_hand_over: None,
        }
    }

    /// Renews only while `cluster` is connected to NATS (or was, within
    /// [`NATS_GRACE`]).
    pub fn connected_through(mut self, cluster: Cluster) -> LeaseKeeper {
        self.cluster = Some(cluster);
        self
    }

    /// False once NATS has been away for longer than [`NATS_GRACE`].
    fn reachable(&mut self) -> bool {
        let Some(cluster) = &self.cluster else {
            return true;
        };
        if cluster.is_connected() {
            self.nats_down_since = None;
            return true;
        }
        let since = *self.nats_down_since.get_or_insert_with(Instant::now);
        if since.elapsed() < NATS_GRACE {
            return true;
        }
        tracing::warn!("NATS is away: not renewing leases, so others can take them over");
        false
    }

    /// Starts a pass (renew, then claim and give back) unless one runs; then
    /// one more runs right after it.
    fn pass(&mut self, ctx: &mut Context<Self>) {
        if self.leaving || !self.reachable() {
            return;
        }
        self.renew(ctx);
        self.claim(ctx);
    }

    /// Renews what is held, on its own: a long claim pass (many keys to
    /// take over, rows still locked by a paused owner) never delays it.
    fn renew(&mut self, ctx: &mut Context<Self>) {
        if self.renewing {
            return;
        }
        self.renewing = true;
        let (pool, me) = (self.pool.clone(), self.me.clone());
        let sent: Vec<(LeaseKey, i64)> = self.owned.iter().map(|(k, e)| (*k, *e)).collect();
        let keys: Vec<LeaseKey> = sent.iter().map(|(key, _)| *key).collect();
        let renewal = async move { leases::renew(&pool, &me, &keys).await };
        ctx.spawn(renewal.into_actor(self).map(move |renewed, keeper, _| {
            keeper.renewing = false;
            match renewed {
                Ok(renewal) => keeper.renewed(&sent, renewal),
                Err(error) => tracing::warn!(%error, "leases not renewed"),
            }
        }));
    }

    /// Claims and gives back; one pass at a time, another right after it
    /// when asked meanwhile.
    fn claim(&mut self, ctx: &mut Context<Self>) {
        if self.claiming {
            self.again = true;
            return;
        }
        self.claiming = true;
        ctx.spawn(
            self.claim_and_release()
                .into_actor(self)
                .map(|outcome, keeper, ctx| {
                    match outcome {
                        Ok(changes) => keeper.apply(changes),
                        Err(error) => tracing::warn!(%error, "leases not claimed"),
                    }
                    keeper.claiming = false;
                    if std::mem::take(&mut keeper.again) && !keeper.leaving {
                        keeper.claim(ctx);
                    }
                }),
        );
    }

    /// Learns which of the leases `sent` for renewal are still held;
    /// the others were taken over.
    fn renewed(&mut self, sent: &[(LeaseKey, i64)], renewal: Renewal) {
        let held: HashMap<LeaseKey, i64> = renewal.held.into_iter().collect();
        let lost: Vec<LeaseKey> = sent
            .iter()
            .filter(|(key, epoch)| held.get(key) != Some(epoch))
            // Given back or re-taken at another epoch since: not this loss.
            .filter(|(key, epoch)| self.owned.get(key) == Some(epoch))
            .map(|(key, _)| *key)
            .collect();
        for key in lost {
            tracing::warn!(?key, "lease lost to another instance");
            self.owned.remove(&key);
            self.tell(key, None);
        }
        self.instances = renewal.instances;
        if !self.instances.iter().any(|id| **id == *self.me) {
            self.instances.push(self.me.to_string());
        }
        self.count_owned();
    }

    /// Claims the wanted keys that are free and ours to take, and gives
    /// back owned keys no longer wanted.
    fn claim_and_release(&mut self) -> impl std::future::Future<Output = Result<Changes, DbError>> {
        let wanted: Vec<LeaseKey> = self
            .wanted
            .iter()
            .flat_map(|(kind, ids)| {
                ids.iter().map(|&object_id| LeaseKey {
                    kind: *kind,
                    object_id,
                })
            })
            .filter(|key| !self.owned.contains_key(key))
            .collect();
        let mut unwanted: Vec<LeaseKey> = self
            .owned
            .keys()
            .filter(|key| !self.is_wanted(key))
            .copied()
            .collect();
        let now = Instant::now();
        unwanted.extend(self.one_to_hand_over(now));
        self.free_since.retain(|key, _| wanted.contains(key));
        let plan = ClaimPlan {
            me: self.me.clone(),
            instances: self.instances.clone(),
            waited: wanted
                .iter()
                .map(|key| {
                    (
                        *key,
                        self.free_since
                            .get(key)
                            .is_some_and(|since| now - *since >= CLAIM_GRACE),
                    )
                })
                .collect(),
        };
        let pool = self.pool.clone();
        async move {
            if !unwanted.is_empty() {
                leases::release(&pool, &plan.me, &unwanted).await?;
            }
            let mut changes = Changes {
                released: unwanted,
                ..Changes::default()
            };
            if wanted.is_empty() {
                return Ok(changes);
            }
            let stored = leases::find(&pool, &wanted).await?;
            for key in wanted {
                let lease = stored.iter().find(|lease| lease.key == key);
                if lease.is_some_and(|lease| lease.live && *lease.owner != *plan.me) {
                    continue;
                }
                changes.free.push(key);
                if !plan.may_claim(key) {
                    continue;
                }
                match leases::claim(&pool, key, &plan.me).await {
                    Ok(Some(epoch)) => changes.gained.push((key, epoch)),
                    Ok(None) => {}
                    Err(error) => tracing::debug!(%error, ?key, "lease not claimed"),
                }
            }
            Ok(changes)
        }
    }

    fn apply(&mut self, changes: Changes) {
        for key in changes.released {
            if self.owned.remove(&key).is_some() {
                self.tell(key, None);
            }
        }
        let now = Instant::now();
        for key in changes.free {
            self.free_since.entry(key).or_insert(now);
        }
        for (key, epoch) in changes.gained {
            // Even if no longer wanted: the next pass gives it back.
            self.free_since.remove(&key);
            tracing::info!(?key, epoch, "lease taken");
            self.owned.insert(key, epoch);
            self.owned_since.insert(key, now);
            let fence = Fence {
                key,
                owner: self.me.clone(),
                epoch,
            };
            self.tell(key, Some(fence));
        }
        self.count_owned();
    }

    /// At most one lease every [`HAND_OVER_EVERY`], held for at least
    /// [`SETTLED_FOR`], whose preferred instance is another live one: given
    /// back so that it moves there (leases taken while that instance was
    /// away or not yet started, e.g. everything running when the first
    /// instance of a cluster starts, spread out again over time).
    fn one_to_hand_over(&mut self, now: Instant) -> Option<LeaseKey> {
        if self
            .last_hand_over
            .is_some_and(|at| now - at < HAND_OVER_EVERY)
        {
            return None;
        }
        let mut settled: Vec<LeaseKey> = self
            .owned_since
            .iter()
            .filter(|(key, since)| now - **since >= SETTLED_FOR && self.owned.contains_key(key))
            .map(|(key, _)| *key)
            .collect();
        settled.sort();
        let key = settled
            .into_iter()
            .find(|key| preferred(&self.instances, *key).is_some_and(|id| *id != *self.me))?;
        tracing::info!(?key, "handing a lease over to its preferred instance");
        self.last_hand_over = Some(now);
        Some(key)
    }

    fn is_wanted(&self, key: &LeaseKey) -> bool {
        self.wanted
            .get(&key.kind)
            .is_some_and(|ids| ids.contains(&key.object_id))
    }

    fn tell(&self, key: LeaseKey, fence: Option<Fence>) {
        if let Some(recipient) = self.subscribers.get(&key.kind) {
            recipient.do_send(LeaseChanged { key, fence });
        }
    }

    fn count_owned(&mut self) {
        let owned = &self.owned;
        self.owned_since.retain(|key, _| owned.contains_key(key));
        let promos = self
            .owned
            .keys()
            .filter(|key| key.kind == LeaseKind::Promo)
            .count();
        self.owned_gauge.set(promos);
    }
}

/// What a claim pass did.
#[derive(Default)]
struct Changes {
    released: Vec<LeaseKey>,
    /// Wanted keys nobody holds.
    free: Vec<LeaseKey>,
    gained: Vec<(LeaseKey, i64)>,
}

/// Who may claim what in one pass.
struct ClaimPlan {
    me: Arc<str>,
    instances: Vec<String>,
    /// Each wanted key, and whether it has been free for the grace period.
    waited: HashMap<LeaseKey, bool>,
}

impl ClaimPlan {
    fn may_claim(&self, key: LeaseKey) -> bool {
        self.waited.get(&key).copied().unwrap_or(false)
            || preferred(&self.instances, key).is_none_or(|id| *id == *self.me)
    }
}

/// The live instance that should own `key`: the highest hash of the two.
pub fn preferred(instances: &[String], key: LeaseKey) -> Option<&str> {
    instances
        .iter()
        .max_by_key(|instance| {
            let mut hasher = DefaultHasher::new();
            (instance.as_str(), key).hash(&mut hasher);
            hasher.finish()
        })
        .map(String::as_str)
}

impl Actor for LeaseKeeper {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        self.pass(ctx);
        ctx.run_interval(RENEW_EVERY, |keeper, ctx| keeper.pass(ctx));
    }
}

impl Handler<Want> for LeaseKeeper {
    type Result = ();

    fn handle(&mut self, message: Want, ctx: &mut Self::Context) {
        let known = self.wanted.get(&message.kind);
        let news = message
            .object_ids
            .iter()
            .any(|id| known.is_none_or(|known| !known.contains(id)));
        self.wanted.insert(message.kind, message.object_ids);
        if news {
            self.pass(ctx);
        }
    }
}

impl Handler<Renew> for LeaseKeeper {
    type Result = ();

    fn handle(&mut self, _: Renew, ctx: &mut Self::Context) {
        self.pass(ctx);
    }
}

impl Handler<Subscribe> for LeaseKeeper {
    type Result = ();

    fn handle(&mut self, message: Subscribe, _: &mut Self::Context) {
        self.subscribers.insert(message.kind, message.recipient);
    }
}

impl Handler<ReleaseAll> for LeaseKeeper {
    type Result = ResponseFuture<()>;

    fn handle(&mut self, _: ReleaseAll, _: &mut Self::Context) -> Self::Result {
        self.leaving = true;
        self.wanted.clear();
        self.owned.clear();
        self.count_owned();
        let (pool, me) = (self.pool.clone(), self.me.clone());
        Box::pin(async move {
            if let Err(error) = leases::release_all(&pool, &me).await {
                tracing::warn!(%error, "leases not given back");
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_spread_over_instances() {
        let instances: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let mut counts: HashMap<&str, usize> = HashMap::new();
        for promo_id in 0..300 {
            let owner = preferred(&instances, LeaseKey::promo(promo_id)).unwrap();
            *counts.entry(owner).or_default() += 1;
        }
        assert_eq!(counts.len(), 3);
        assert!(counts.values().all(|&count| count > 60), "{counts:?}");
    }

    #[test]
    fn every_instance_agrees_on_the_preferred_one() {
        let one: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let other: Vec<String> = ["c", "a", "b"].map(String::from).to_vec();
        for promo_id in 0..50 {
            let key = LeaseKey::promo(promo_id);
            assert_eq!(preferred(&one, key), preferred(&other, key));
        }
    }
}
