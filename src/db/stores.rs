//! SQL for `stores`.

use deadpool_postgres::GenericClient;
use tokio_postgres::Row;

use super::{DbError, DbPool, Listing, PageWindow};
use crate::domain::entities::Store;
use crate::domain::{GeoPoint, Name};

/// The fields a store update may change; `None` keeps the stored value.
#[derive(Debug, Default)]
pub struct StoreChanges {
    pub name: Option<Name>,
    pub latitude: Option<f64>,
    pub longitude: Option<f64>,
}

/// Stores in id order, one page of them.
#[tracing::instrument(skip_all)]
pub async fn list_stores(pool: &DbPool, window: PageWindow) -> Result<Listing<Store>, DbError> {
    let client = pool.get().await?;
    let count = client.prepare_cached("SELECT count(*) FROM stores").await?;
    let total: i64 = client.query_one(&count, &[]).await?.get(0);
    let page = client
        .prepare_cached(
            "SELECT id, name, latitude, longitude FROM stores ORDER BY id LIMIT $1 OFFSET $2",
        )
        .await?;
    let rows = client
        .query(&page, &[&window.limit, &window.offset])
        .await?;
    Ok(Listing {
        total,
        items: rows.iter().map(store_from_row).collect(),
    })
}

/// One store, if it exists.
#[tracing::instrument(skip(pool))]
pub async fn find_store(pool: &DbPool, store_id: i64) -> Result<Option<Store>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached("SELECT id, name, latitude, longitude FROM stores WHERE id = $1")
        .await?;
    let row = client.query_opt(&statement, &[&store_id]).await?;
    Ok(row.as_ref().map(store_from_row))
}

/// Creates a store.
#[tracing::instrument(skip_all)]
pub async fn insert_store(
    pool: &DbPool,
    name: &Name,
    location: GeoPoint,
) -> Result<Store, DbError> {
    let client = pool.get().await?;
    insert_store_with(&client, name, location).await
}

/// Creates a store through any client (a pooled one or a transaction).
pub async fn insert_store_with(
    client: &impl GenericClient,
    name: &Name,
    location: GeoPoint,
) -> Result<Store, DbError> {
    let statement = client
        .prepare_cached(
            "INSERT INTO stores (name, latitude, longitude) VALUES ($1, $2, $3) \
             RETURNING id, name, latitude, longitude",
        )
        .await?;
    let row = client
        .query_one(
            &statement,
            &[
                &name.as_str(),
                &location.latitude.degrees(),
                &location.longitude.degrees(),
            ],
        )
        .await?;
    Ok(store_from_row(&row))
}

/// Applies `changes` to one store; `None` when it does not exist.
#[tracing::instrument(skip(pool, changes))]
pub async fn update_store(
    pool: &DbPool,
    store_id: i64,
    changes: &StoreChanges,
) -> Result<Option<Store>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "UPDATE stores SET name = COALESCE($2, name), latitude = COALESCE($3, latitude), \
             longitude = COALESCE($4, longitude) WHERE id = $1 \
             RETURNING id, name, latitude, longitude",
        )
        .await?;
    let name = changes.name.as_ref().map(Name::as_str);
    let row = client
        .query_opt(
            &statement,
            &[&store_id, &name, &changes.latitude, &changes.longitude],
        )
        .await?;
    Ok(row.as_ref().map(store_from_row))
}

/// Deletes a store with its products and their promos; false when it did not exist.
#[tracing::instrument(skip(pool))]
pub async fn delete_store(pool: &DbPool, store_id: i64) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached("DELETE FROM stores WHERE id = $1")
        .await?;
    Ok(client.execute(&statement, &[&store_id]).await? == 1)
}

fn store_from_row(row: &Row) -> Store {
    Store {
        id: row.get("id"),
        name: row.get("name"),
        latitude: row.get("latitude"),
        longitude: row.get("longitude"),
    }
}
