//! `AudienceIndex`: every shopper's location and segments, in memory.
//!
//! Owns a map user → [`AudienceMember`] (eligibility checks without a database
//! query) and, per segment, an rstar R-tree of its members' locations as 3D
//! unit vectors, so "who of these segments is within r km" walks only the
//! targeted clients and is a chord-length query: exact great-circle distance,
//! with no distortion at the poles or the antimeridian. Loaded at boot; REST and
//! WebSocket location changes update it before they answer.
//!
//! The map is a persistent `imbl::HashMap` (a change costs O(log n) and a copy
//! O(1)), published through [`Members`] after every change and before the
//! change's message is answered, so request handlers look a member up without
//! a mailbox hop; the actor stays the only writer.
//!
//! In cluster mode other instances' changes arrive as single members, and a
//! periodic full reload ([`BeginResync`], [`ApplyResync`]) heals any that
//! were missed; a reload never overrides a member changed after it began.

use std::collections::HashMap;
use std::sync::Arc;

use actix::prelude::*;
use arc_swap::ArcSwap;
use rstar::primitives::GeomWithData;
use rstar::RTree;

use crate::domain::eligibility::AudienceMember;
use crate::domain::geo::{chord_between, chord_for_km, km_from_chord};
use crate::domain::GeoPoint;

type IndexedPoint = GeomWithData<[f64; 3], i64>;

type MemberMap = imbl::HashMap<i64, AudienceMember>;

/// The members as last published by the [`AudienceIndex`]; cheap to clone,
/// shared by every worker.
#[derive(Clone)]
pub struct Members(Arc<ArcSwap<MemberMap>>);

impl Members {
    /// What the index knows of one user.
    pub fn get(&self, user_id: i64) -> Option<AudienceMember> {
        self.0.load().get(&user_id).cloned()
    }
}

/// The in-memory audience.
pub struct AudienceIndex {
    members: MemberMap,
    published: Members,
    /// One tree per segment, so a query only walks the clients a promo targets.
    trees: HashMap<i64, RTree<IndexedPoint>>,
    /// Counts the changes of single members, for [`ApplyResync`].
    generation: u64,
    /// The generation of each member's last single change since the last
    /// applied resync (cluster mode only: empty until a resync begins).
    changed_at: HashMap<i64, u64>,
    /// A resync began and was not applied yet: single changes are recorded.
    resyncing: bool,
}

impl AudienceIndex {
    /// Builds the index from every member at once (bulk-loaded trees).
    pub fn new(members: Vec<AudienceMember>) -> AudienceIndex {
        let mut points: HashMap<i64, Vec<IndexedPoint>> = HashMap::new();
        for member in &members {
            let Some(location) = member.location else {
                continue;
            };
            for segment_id in &member.segment_ids {
                points
                    .entry(*segment_id)
                    .or_default()
                    .push(IndexedPoint::new(location.unit_vector(), member.user_id));
            }
        }
        let members: MemberMap = members
            .into_iter()
            .map(|member| (member.user_id, member))
            .collect();
        AudienceIndex {
            trees: points
                .into_iter()
                .map(|(segment_id, points)| (segment_id, RTree::bulk_load(points)))
                .collect(),
            published: Members(Arc::new(ArcSwap::from_pointee(members.clone()))),
            members,
            generation: 0,
            changed_at: HashMap::new(),
            resyncing: false,
        }
    }

    /// What this index publishes (take it before starting the actor).
    pub fn members(&self) -> Members {
        self.published.clone()
    }

    /// Lets readers see the members as they are now.
    fn publish(&self) {
        self.published.0.store(Arc::new(self.members.clone()));
    }

    fn remove(&mut self, user_id: i64) -> Option<AudienceMember> {
        let old = self.members.remove(&user_id)?;
        if let Some(location) = old.location {
            let point = IndexedPoint::new(location.unit_vector(), user_id);
            for segment_id in &old.segment_ids {
                if let Some(tree) = self.trees.get_mut(segment_id) {
                    tree.remove(&point);
                }
            }
        }
        Some(old)
    }

    /// Notes a single change, which a resync under way must not undo.
    fn note_change(&mut self, user_id: i64) {
        self.generation += 1;
        if self.resyncing {
            self.changed_at.insert(user_id, self.generation);
        }
    }

    /// Applies a full load begun at generation `since`: what differs is
    /// put or removed, except members changed after the load began.
    fn apply_resync(&mut self, loaded: Vec<AudienceMember>, since: u64) -> usize {
        let changed_after = |changed_at: &HashMap<i64, u64>, user_id: i64| {
            changed_at.get(&user_id).is_some_and(|at| *at > since)
        };
        let mut seen = std::collections::HashSet::with_capacity(loaded.len());
        let mut fixed = 0;
        for member in loaded {
            seen.insert(member.user_id);
            let stale = self.members.get(&member.user_id) != Some(&member);
            if stale && !changed_after(&self.changed_at, member.user_id) {
                self.put(member);
                fixed += 1;
            }
        }
        let gone: Vec<i64> = self
            .members
            .keys()
            .filter(|user_id| !seen.contains(user_id))
            .filter(|user_id| !changed_after(&self.changed_at, **user_id))
            .copied()
            .collect();
        fixed += gone.len();
        for user_id in gone {
            self.remove(user_id);
        }
        self.changed_at.clear();
        self.resyncing = false;
        fixed
    }

    fn put(&mut self, member: AudienceMember) {
        self.remove(member.user_id);
        if let Some(location) = member.location {
            let point = IndexedPoint::new(location.unit_vector(), member.user_id);
            for segment_id in &member.segment_ids {
                self.trees.entry(*segment_id).or_default().insert(point);
            }
        }
        self.members.insert(member.user_id, member);
    }

    /// The members within `radius_km` of `center` that are in any of
    /// `segment_ids`, each once, with their distance in km.
    pub fn within_radius(
        &self,
        center: GeoPoint,
        radius_km: f64,
        segment_ids: &[i64],
    ) -> Vec<(i64, f64)> {
        let chord = chord_for_km(radius_km);
        let origin = center.unit_vector();
        let mut found: Vec<(i64, f64)> = segment_ids
            .iter()
            .filter_map(|segment_id| self.trees.get(segment_id))
            .flat_map(|tree| tree.locate_within_distance(origin, chord * chord))
            .map(|point| {
                (
                    point.data,
                    km_from_chord(chord_between(origin, *point.geom())),
                )
            })
            .collect();
        if segment_ids.len() > 1 {
            // A client in several of the segments was found once per segment.
            found.sort_unstable_by_key(|(user_id, _)| *user_id);
            found.dedup_by_key(|(user_id, _)| *user_id);
        }
        found
    }
}

impl Actor for AudienceIndex {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        ctx.set_mailbox_capacity(4096);
    }
}

/// Adds or replaces a member (new profile, new location, new segments).
#[derive(Message)]
#[rtype(result = "()")]
pub struct PutMember {
    pub member: AudienceMember,
}

/// Forgets a member (profile deleted).
#[derive(Message)]
#[rtype(result = "()")]
pub struct RemoveMember {
    pub user_id: i64,
}

/// The members within a radius who are in any of the segments, with their distance in km.
#[derive(Message)]
#[rtype(result = "Vec<(i64, f64)>")]
pub struct FindWithinRadius {
    pub center: GeoPoint,
    pub radius_km: f64,
    pub segment_ids: Vec<i64>,
}

impl Handler<PutMember> for AudienceIndex {
    type Result = ();

    fn handle(&mut self, message: PutMember, _: &mut Self::Context) {
        self.note_change(message.member.user_id);
        self.put(message.member);
        self.publish();
    }
}

impl Handler<RemoveMember> for AudienceIndex {
    type Result = ();

    fn handle(&mut self, message: RemoveMember, _: &mut Self::Context) {
        self.note_change(message.user_id);
        self.remove(message.user_id);
        self.publish();
    }
}

/// A full reload is about to be read: answers the generation to hand back
/// with it in [`ApplyResync`].
#[derive(Message)]
#[rtype(result = "u64")]
pub struct BeginResync;

impl Handler<BeginResync> for AudienceIndex {
    type Result = u64;

    fn handle(&mut self, _: BeginResync, _: &mut Self::Context) -> u64 {
        self.resyncing = true;
        self.generation
    }
}

/// Every member as read from PostgreSQL after [`BeginResync`] answered
/// `since`; answers how many members it put or removed.
#[derive(Message)]
#[rtype(result = "usize")]
pub struct ApplyResync {
    pub members: Vec<AudienceMember>,
    pub since: u64,
}

impl Handler<ApplyResync> for AudienceIndex {
    type Result = usize;

    fn handle(&mut self, message: ApplyResync, _: &mut Self::Context) -> usize {
        let fixed = self.apply_resync(message.members, message.since);
        if fixed > 0 {
            self.publish();
        }
        fixed
    }
}

impl Handler<FindWithinRadius> for AudienceIndex {
    type Result = Vec<(i64, f64)>;

    fn handle(&mut self, message: FindWithinRadius, _: &mut Self::Context) -> Self::Result {
        self.within_radius(message.center, message.radius_km, &message.segment_ids)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(user_id: i64, latitude: f64, longitude: f64, segments: &[i64]) -> AudienceMember {
        AudienceMember {
            user_id,
            location: Some(GeoPoint::parse(latitude, longitude).unwrap()),
            segment_ids: segments.to_vec(),
        }
    }

    #[test]
    fn a_radius_query_matches_segment_and_distance() {
        let index = AudienceIndex::new(vec![
            member(1, 19.4326, -99.1332, &[1]),
            member(2, 19.4326, -99.1332, &[2]),
            member(3, 19.5326, -99.1332, &[1]),
        ]);
        let center = GeoPoint::parse(19.4326, -99.1332).unwrap();
        let found = index.within_radius(center, 2.0, &[1]);
        assert_eq!(found.iter().map(|(id, _)| *id).collect::<Vec<_>>(), vec![1]);
        assert!(found[0].1 < 1e-6);
    }

    #[test]
    fn members_see_each_change_once_it_is_published_and_not_before() {
        let mut index = AudienceIndex::new(vec![member(1, 0.0, 0.0, &[1])]);
        let members = index.members();
        assert_eq!(members.get(1), Some(member(1, 0.0, 0.0, &[1])));
        index.put(member(1, 10.0, 0.0, &[2]));
        assert_eq!(members.get(1), Some(member(1, 0.0, 0.0, &[1])));
        index.publish();
        assert_eq!(members.get(1), Some(member(1, 10.0, 0.0, &[2])));
        index.remove(1);
        index.publish();
        assert_eq!(members.get(1), None);
    }

    #[test]
    fn a_resync_heals_missed_changes_but_never_undoes_a_later_one() {
        let mut index =
            AudienceIndex::new(vec![member(1, 0.0, 0.0, &[1]), member(2, 0.0, 0.0, &[1])]);
        index.resyncing = true;
        let since = index.generation;
        // Changed here after the load began: the load's older rows lose.
        index.note_change(2);
        index.put(member(2, 5.0, 0.0, &[1]));
        let loaded = vec![member(2, 0.0, 0.0, &[1]), member(3, 1.0, 1.0, &[1])];
        assert_eq!(index.apply_resync(loaded, since), 2);
        assert_eq!(index.members.get(&1), None);
        assert_eq!(index.members.get(&2), Some(&member(2, 5.0, 0.0, &[1])));
        assert_eq!(index.members.get(&3), Some(&member(3, 1.0, 1.0, &[1])));
        assert!(index.changed_at.is_empty());
    }

    #[test]
    fn a_member_of_several_targeted_segments_is_found_once() {
        let index = AudienceIndex::new(vec![member(1, 0.0, 0.0, &[1, 2])]);
        let center = GeoPoint::parse(0.0, 0.0).unwrap();
        assert_eq!(index.within_radius(center, 1.0, &[1, 2]).len(), 1);
    }

    #[test]
    fn moving_a_member_moves_its_point() {
        let mut index = AudienceIndex::new(vec![member(1, 0.0, 0.0, &[1])]);
        index.put(member(1, 0.0, 179.999, &[1]));
        let far_east = GeoPoint::parse(0.0, -179.999).unwrap();
        assert_eq!(index.within_radius(far_east, 1.0, &[1]).len(), 1);
        assert!(index
            .within_radius(GeoPoint::parse(0.0, 0.0).unwrap(), 1.0, &[1])
            .is_empty());
        index.remove(1);
        assert!(index.within_radius(far_east, 1.0, &[1]).is_empty());
    }

    mod against_brute_force {
        use super::*;
        use proptest::prelude::*;

        /// A point within about `spread` degrees of a center, wrapped onto the globe.
        fn near(center: (f64, f64), spread: f64) -> impl Strategy<Value = (f64, f64)> {
            (-spread..spread, -spread..spread).prop_map(move |(dlat, dlon)| {
                let latitude = (center.0 + dlat).clamp(-90.0, 90.0);
                let longitude = (center.1 + dlon + 540.0).rem_euclid(360.0) - 180.0;
                (latitude, longitude)
            })
        }

        fn case() -> impl Strategy<Value = ((f64, f64), f64, Vec<(f64, f64)>)> {
            // Centers anywhere, with extra weight on the poles and the antimeridian.
            let center = prop_oneof![
                (-90.0..90.0f64, -180.0..180.0f64),
                (85.0..90.0f64, -180.0..180.0f64),
                (-90.0..-85.0f64, -180.0..180.0f64),
                (
                    -60.0..60.0f64,
                    prop_oneof![170.0..180.0f64, -180.0..-170.0f64]
                ),
            ];
            (center, 0.05..100.0f64).prop_flat_map(|(center, radius_km)| {
                let spread = (radius_km / 111.0 * 2.5).min(60.0);
                (
                    Just(center),
                    Just(radius_km),
                    proptest::collection::vec(near(center, spread), 1..150),
                )
            })
        }

        proptest! {
            #![proptest_config(ProptestConfig::with_cases(200))]

            #[test]
            fn radius_queries_match_a_haversine_scan((center, radius_km, points) in case()) {
                let center = GeoPoint::parse(center.0, center.1).unwrap();
                let members: Vec<AudienceMember> = points
                    .iter()
                    .enumerate()
                    .map(|(index, (lat, lon))| member(index as i64, *lat, *lon, &[1]))
                    .collect();
                let index = AudienceIndex::new(members.clone());
                let found: std::collections::BTreeSet<i64> =
                    index.within_radius(center, radius_km, &[1]).into_iter().map(|(id, _)| id).collect();
                for member in &members {
                    let distance = member.location.unwrap().distance_km(center);
                    // Points a hair from the edge may fall either way in floating point.
                    if (distance - radius_km).abs() < 1e-6 {
                        continue;
                    }
                    prop_assert_eq!(found.contains(&member.user_id), distance <= radius_km,
                        "user {} at {} km, radius {}", member.user_id, distance, radius_km);
                }
            }
        }
    }
}
