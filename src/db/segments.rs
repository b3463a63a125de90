//! SQL for `user_segments`.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{DbError, DbPool, Listing, PageWindow, Violation};
use crate::domain::entities::Segment;
use crate::domain::Name;

/// The fields a segment update may change; `None` keeps the stored value.
#[derive(Debug, Default)]
pub struct SegmentChanges {
    pub name: Option<Name>,
    pub description: Option<String>,
}

/// Segments in id order, one page of them.
#[tracing::instrument(skip_all)]
pub async fn list_segments(pool: &DbPool, window: PageWindow) -> Result<Listing<Segment>, DbError> {
    let client = pool.get().await?;
    let count = client
        .prepare_cached("SELECT count(*) FROM user_segments")
        .await?;
    let total: i64 = client.query_one(&count, &[]).await?.get(0);
    let page = client
        .prepare_cached(
            "SELECT id, name, description FROM user_segments ORDER BY id LIMIT $1 OFFSET $2",
        )
        .await?;
    let rows = client
        .query(&page, &[&window.limit, &window.offset])
        .await?;
    Ok(Listing {
        total,
        items: rows.iter().map(segment_from_row).collect(),
    })
}

/// One segment, if it exists.
#[tracing::instrument(skip(pool))]
pub async fn find_segment(pool: &DbPool, segment_id: i64) -> Result<Option<Segment>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached("SELECT id, name, description FROM user_segments WHERE id = $1")
        .await?;
    let row = client.query_opt(&statement, &[&segment_id]).await?;
    Ok(row.as_ref().map(segment_from_row))
}

/// Creates a segment; a taken name is [`Violation::DuplicateSegmentName`].
#[tracing::instrument(skip_all)]
pub async fn insert_segment(
    pool: &DbPool,
    name: &Name,
    description: &str,
) -> Result<Segment, DbError> {
    let client = pool.get().await?;
    upsert_segment_with(&client, name, description, false).await
}

/// Inserts a segment; with `keep_existing`, an existing one of that name is
/// returned unchanged instead (demo data uses this to stay idempotent).
pub async fn upsert_segment_with(
    client: &impl GenericClient,
    name: &Name,
    description: &str,
    keep_existing: bool,
) -> Result<Segment, DbError> {
    if keep_existing {
        let existing = client
            .prepare_cached(
                "SELECT id, name, description FROM user_segments WHERE lower(name) = lower($1)",
            )
            .await?;
        if let Some(row) = client.query_opt(&existing, &[&name.as_str()]).await? {
            return Ok(segment_from_row(&row));
        }
    }
    let statement = client
        .prepare_cached(
            "INSERT INTO user_segments (name, description) VALUES ($1, $2) \
             RETURNING id, name, description",
        )
        .await?;
    let row = client
        .query_one(&statement, &[&name.as_str(), &description])
        .await?;
    Ok(segment_from_row(&row))
}

/// Applies `changes` to one segment; `None` when it does not exist.
#[tracing::instrument(skip(pool, changes))]
pub async fn update_segment(
    pool: &DbPool,
    segment_id: i64,
    changes: &SegmentChanges,
) -> Result<Option<Segment>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE user_segments SET name = COALESCE($2, name), \
             description = COALESCE($3, description) WHERE id = $1 \
             RETURNING id, name, description",
        )
        .await?;
    let name = changes.name.as_ref().map(Name::as_str);
    let row = client
        .query_opt(&statement, &[&segment_id, &name, &changes.description])
        .await?;
    Ok(row.as_ref().map(segment_from_row))
}

/// Deletes a segment; [`Violation::SegmentInUse`] while a promo targets it.
#[tracing::instrument(skip(pool))]
pub async fn delete_segment(pool: &DbPool, segment_id: i64) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached("DELETE FROM user_segments WHERE id = $1")
        .await?;
    match client.execute(&statement, &[&segment_id]).await {
        Ok(deleted) => Ok(deleted == 1),
        // The only foreign key a segment delete can break is a promo's RESTRICT one.
        Err(error) if DbError::is_foreign_key_violation(&error) => {
            Err(DbError::Violation(Violation::SegmentInUse))
        }
        Err(error) => Err(error.into()),
    }
}

/// Fails with [`Violation::UnknownSegment`] unless every id names a segment.
pub async fn require_known_segments(
    client: &impl GenericClient,
    segment_ids: &[i64],
) -> Result<(), DbError> {
    if find_unknown_segment_ids(client, segment_ids)
        .await?
        .is_empty()
    {
        Ok(())
    } else {
        Err(DbError::Violation(Violation::UnknownSegment))
    }
}

/// The ids among `segment_ids` that name no segment.
pub async fn find_unknown_segment_ids(
    client: &impl GenericClient,
    segment_ids: &[i64],
) -> Result<Vec<i64>, DbError> {
    let statement = client
        .prepare_cached(
            "SELECT wanted FROM unnest($1::bigint[]) AS wanted \
             WHERE NOT EXISTS (SELECT 1 FROM user_segments s WHERE s.id = wanted) \
             ORDER BY wanted",
        )
        .await?;
    let rows = client.query(&statement, &[&segment_ids]).await?;
    Ok(rows.iter().map(|row| row.get(0)).collect())
}

pub(super) fn segment_from_row(row: &Row) -> Segment {
    Segment {
        id: row.get("id"),
        name: row.get("name"),
        description: row.get("description"),
    }
}
