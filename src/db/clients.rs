//! SQL for client profiles: `client_profiles`, their `users` row and their
//! `client_segments`. Writes that touch several tables run in one transaction.

use std::collections::HashMap;

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::segments::{require_known_segments, segment_from_row};
use super::{DbError, DbPool, Listing, PageWindow};
use crate::domain::eligibility::AudienceMember;
use crate::domain::entities::{ClientProfile, ProfileUser, Segment};
use crate::domain::GeoPoint;

/// A new shopper account with its profile.
#[derive(Debug)]
pub struct NewClient {
    pub username: String,
    pub password_hash: String,
    pub email: Option<String>,
    pub location: Option<GeoPoint>,
    pub segment_ids: Vec<i64>,
}

/// The fields an admin update may change; `None` keeps the stored value.
#[derive(Debug, Default)]
pub struct ClientChanges {
    pub username: Option<String>,
    pub password_hash: Option<String>,
    /// `Some(None)` clears the address.
    pub email: Option<Option<String>>,
    /// `Some(None)` forgets the location.
    pub location: Option<Option<GeoPoint>>,
    pub segment_ids: Option<Vec<i64>>,
}

/// Which profiles a listing covers.
#[derive(Debug, Clone, Copy)]
pub enum ProfileScope {
    /// Every profile (the admin's view).
    All,
    /// Only the profile of this user (a shopper's view).
    OwnedBy(i64),
}

/// A profile's columns; `last_notification_date` is the shopper's latest
/// notification (one probe of `promo_notifications_user_idx`).
const PROFILE_COLUMNS: &str = "p.id, p.user_id, u.username, u.email, p.latitude, p.longitude, \
    (SELECT n.sent_at FROM promo_notifications n WHERE n.user_id = p.user_id \
     ORDER BY n.sent_at DESC LIMIT 1) AS last_notification_date \
    FROM client_profiles p JOIN users u ON u.id = p.user_id";

/// Profiles in id order, one page of them.
#[tracing::instrument(skip(pool))]
pub async fn list_profiles(
    pool: &DbPool,
    scope: ProfileScope,
    window: PageWindow,
) -> Result<Listing<ClientProfile>, DbError> {
    let client = pool.get().await?;
    let owner = match scope {
        ProfileScope::All => None,
        ProfileScope::OwnedBy(user_id) => Some(user_id),
    };
    let count = client
        .prepare_cached(
            "SELECT count(*) FROM client_profiles WHERE $1::bigint IS NULL OR user_id = $1",
        )
        .await?;
    let total: i64 = client.query_one(&count, &[&owner]).await?.get(0);
    let page = client
        .prepare_cached(&format!(
            "SELECT {PROFILE_COLUMNS} WHERE $1::bigint IS NULL OR p.user_id = $1 \
             ORDER BY p.id LIMIT $2 OFFSET $3"
        ))
        .await?;
    let rows = client
        .query(&page, &[&owner, &window.limit, &window.offset])
        .await?;
    let items = profiles_with_segments(&client, &rows).await?;
    Ok(Listing { total, items })
}

/// One profile by its id.
#[tracing::instrument(skip(pool))]
pub async fn find_profile(
    pool: &DbPool,
    profile_id: i64,
) -> Result<Option<ClientProfile>, DbError> {
    let client = pool.get().await?;
    find_profile_with(&client, "p.id", profile_id).await
}

/// The profile of one user (a shopper's `me/`).
#[tracing::instrument(skip(pool))]
pub async fn find_profile_of_user(
    pool: &DbPool,
    user_id: i64,
) -> Result<Option<ClientProfile>, DbError> {
    let client = pool.get().await?;
    find_profile_with(&client, "p.user_id", user_id).await
}

/// Creates a shopper account, its profile and its segments in one transaction.
#[tracing::instrument(skip_all, fields(username = %new.username))]
pub async fn insert_client(pool: &DbPool, new: &NewClient) -> Result<ClientProfile, DbError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    require_known_segments(&transaction, &new.segment_ids).await?;
    let insert_user = transaction
        .prepare_cached(
            "INSERT INTO users (username, email, password_hash) VALUES ($1, $2, $3) RETURNING id",
        )
        .await?;
    let user_id: i64 = transaction
        .query_one(
            &insert_user,
            &[&new.username, &new.email, &new.password_hash],
        )
        .await?
        .get(0);
    let insert_profile = transaction
        .prepare_cached(
            "INSERT INTO client_profiles (user_id, latitude, longitude) VALUES ($1, $2, $3) \
             RETURNING id",
        )
        .await?;
    let (latitude, longitude) = split_location(new.location);
    let profile_id: i64 = transaction
        .query_one(&insert_profile, &[&user_id, &latitude, &longitude])
        .await?
        .get(0);
    replace_segments(&transaction, profile_id, &new.segment_ids).await?;
    let profile = find_profile_with(&transaction, "p.id", profile_id).await?;
    transaction.commit().await?;
    profile.ok_or_else(|| DbError::Corrupt("inserted profile vanished".into()))
}

/// Applies an admin's `changes` to one profile in one transaction; `None` when
/// the profile does not exist.
#[tracing::instrument(skip(pool, changes))]
pub async fn update_client(
    pool: &DbPool,
    profile_id: i64,
    changes: &ClientChanges,
) -> Result<Option<ClientProfile>, DbError> {
    let mut client = pool.get().await?;
    let transaction = client.transaction().await?;
    let Some(user_id) = lock_profile_owner(&transaction, profile_id).await? else {
        return Ok(None);
    };
    if let Some(segment_ids) = &changes.segment_ids {
        require_known_segments(&transaction, segment_ids).await?;
        replace_segments(&transaction, profile_id, segment_ids).await?;
    }
    let update_user = transaction
        .prepare_cached(
            "UPDATE users SET username = COALESCE($2, username), \
             password_hash = COALESCE($3, password_hash), \
             email = CASE WHEN $4 THEN $5 ELSE email END WHERE id = $1",
        )
        .await?;
    let email_given = changes.email.is_some();
    let email = changes.email.clone().flatten();
    transaction
        .execute(
            &update_user,
            &[
                &user_id,
                &changes.username,
                &changes.password_hash,
                &email_given,
                &email,
            ],
        )
        .await?;
    if let Some(location) = changes.location {
        write_location(&transaction, profile_id, location).await?;
    }
    let profile = find_profile_with(&transaction, "p.id", profile_id).await?;
    transaction.commit().await?;
    Ok(profile)
}

/// Sets (or forgets) the live location of the user's profile.
#[tracing::instrument(skip(pool))]
pub async fn update_location_of_user(
    pool: &DbPool,
    user_id: i64,
    location: Option<GeoPoint>,
) -> Result<Option<ClientProfile>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE client_profiles SET latitude = $2, longitude = $3, updated_at = now() \
             WHERE user_id = $1",
        )
        .await?;
    let (latitude, longitude) = split_location(location);
    if client
        .execute(&statement, &[&user_id, &latitude, &longitude])
        .await?
        == 0
    {
        return Ok(None);
    }
    find_profile_with(&client, "p.user_id", user_id).await
}

/// Every shopper's location and segments, for the audience index.
#[tracing::instrument(skip(pool))]
pub async fn load_audience(pool: &DbPool) -> Result<Vec<AudienceMember>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!("{AUDIENCE_SELECT} GROUP BY p.id"))
        .await?;
    let rows = client.query(&statement, &[]).await?;
    Ok(rows.iter().map(member_from_row).collect())
}

/// One shopper's location and segments.
#[tracing::instrument(skip(pool))]
pub async fn find_audience_member(
    pool: &DbPool,
    user_id: i64,
) -> Result<Option<AudienceMember>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "{AUDIENCE_SELECT} WHERE p.user_id = $1 GROUP BY p.id"
        ))
        .await?;
    let row = client.query_opt(&statement, &[&user_id]).await?;
    Ok(row.as_ref().map(member_from_row))
}

const AUDIENCE_SELECT: &str = "SELECT p.user_id, p.latitude, p.longitude, \
    COALESCE(array_agg(cs.segment_id) FILTER (WHERE cs.segment_id IS NOT NULL), '{}') AS segment_ids \
    FROM client_profiles p LEFT JOIN client_segments cs ON cs.client_profile_id = p.id";

fn member_from_row(row: &Row) -> AudienceMember {
    let latitude: Option<f64> = row.get("latitude");
    let longitude: Option<f64> = row.get("longitude");
    let location = match (latitude, longitude) {
        (Some(latitude), Some(longitude)) => GeoPoint::parse(latitude, longitude).ok(),
        _ => None,
    };
    AudienceMember {
        user_id: row.get("user_id"),
        location,
        segment_ids: row.get("segment_ids"),
    }
}

/// Deletes a profile with its account; returns the account's id if it existed.
#[tracing::instrument(skip(pool))]
pub async fn delete_client(pool: &DbPool, profile_id: i64) -> Result<Option<i64>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "DELETE FROM users WHERE id = (SELECT user_id FROM client_profiles WHERE id = $1) \
             RETURNING id",
        )
        .await?;
    let row = client.query_opt(&statement, &[&profile_id]).await?;
    Ok(row.map(|row| row.get(0)))
}

async fn lock_profile_owner(
    client: &impl GenericClient,
    profile_id: i64,
) -> Result<Option<i64>, DbError> {
    let statement = client
        .prepare_cached("SELECT user_id FROM client_profiles WHERE id = $1 FOR UPDATE")
        .await?;
    let row = client.query_opt(&statement, &[&profile_id]).await?;
    Ok(row.map(|row| row.get(0)))
}

async fn write_location(
    client: &impl GenericClient,
    profile_id: i64,
    location: Option<GeoPoint>,
) -> Result<(), DbError> {
    let statement = client
        .prepare_cached(
            "UPDATE client_profiles SET latitude = $2, longitude = $3, updated_at = now() \
             WHERE id = $1",
        )
        .await?;
    let (latitude, longitude) = split_location(location);
    client
        .execute(&statement, &[&profile_id, &latitude, &longitude])
        .await?;
    Ok(())
}

async fn replace_segments(
    client: &impl GenericClient,
    profile_id: i64,
    segment_ids: &[i64],
) -> Result<(), DbError> {
    let clear = client
        .prepare_cached("DELETE FROM client_segments WHERE client_profile_id = $1")
        .await?;
    client.execute(&clear, &[&profile_id]).await?;
    let insert = client
        .prepare_cached(
            "INSERT INTO client_segments (client_profile_id, segment_id) \
             SELECT $1, segment_id FROM unnest($2::bigint[]) AS segment_id \
             ON CONFLICT DO NOTHING",
        )
        .await?;
    client
        .execute(&insert, &[&profile_id, &segment_ids])
        .await?;
    Ok(())
}

async fn find_profile_with(
    client: &impl GenericClient,
    key_column: &'static str,
    key: i64,
) -> Result<Option<ClientProfile>, DbError> {
    let statement = client
        .prepare_cached(&format!("SELECT {PROFILE_COLUMNS} WHERE {key_column} = $1"))
        .await?;
    let rows = client.query(&statement, &[&key]).await?;
    Ok(profiles_with_segments(client, &rows).await?.pop())
}

/// Builds profiles from rows, loading all their segments in one query.
async fn profiles_with_segments(
    client: &impl GenericClient,
    rows: &[Row],
) -> Result<Vec<ClientProfile>, DbError> {
    let profile_ids: Vec<i64> = rows.iter().map(|row| row.get("id")).collect();
    let statement = client
        .prepare_cached(
            "SELECT cs.client_profile_id, s.id, s.name, s.description FROM client_segments cs \
             JOIN user_segments s ON s.id = cs.segment_id \
             WHERE cs.client_profile_id = ANY($1) ORDER BY s.id",
        )
        .await?;
    let mut segments: HashMap<i64, Vec<Segment>> = HashMap::new();
    for row in client.query(&statement, &[&profile_ids]).await? {
        segments
            .entry(row.get("client_profile_id"))
            .or_default()
            .push(segment_from_row(&row));
    }
    Ok(rows
        .iter()
        .map(|row| profile_from_row(row, segments.remove(&row.get::<_, i64>("id"))))
        .collect())
}

fn profile_from_row(row: &Row, segments: Option<Vec<Segment>>) -> ClientProfile {
    ClientProfile {
        id: row.get("id"),
        user: ProfileUser {
            id: row.get("user_id"),
            username: row.get("username"),
            email: row.get::<_, Option<String>>("email").unwrap_or_default(),
        },
        segments: segments.unwrap_or_default(),
        latitude: row.get("latitude"),
        longitude: row.get("longitude"),
        last_notification_date: row.get("last_notification_date"),
    }
}

fn split_location(location: Option<GeoPoint>) -> (Option<f64>, Option<f64>) {
    match location {
        Some(point) => (
            Some(point.latitude.degrees()),
            Some(point.longitude.degrees()),
        ),
        None => (None, None),
    }
}
