//! SQL for `products`; every read embeds the product's store.

use tokio_postgres::Row;

use super::{DbError, DbPool, Listing, PageWindow};
use crate::domain::entities::{Product, Store};
use crate::domain::{Money, Name};

/// The fields a product update may change; `None` keeps the stored value.
#[derive(Debug, Default)]
pub struct ProductChanges {
    pub store_id: Option<i64>,
    pub name: Option<Name>,
    pub regular_price: Option<Money>,
}

/// Columns of a product joined with its store, as `product_from_row` reads them.
const PRODUCT_COLUMNS: &str = "p.id, p.name, p.regular_price, \
    s.id AS store_id, s.name AS store_name, s.latitude, s.longitude";

/// Products in id order, one page of them.
#[tracing::instrument(skip_all)]
pub async fn list_products(pool: &DbPool, window: PageWindow) -> Result<Listing<Product>, DbError> {
    let client = pool.get().await?;
    let count = client
        .prepare_cached("SELECT count(*) FROM products")
        .await?;
    let total: i64 = client.query_one(&count, &[]).await?.get(0);
    let page = client
        .prepare_cached(&format!(
            "SELECT {PRODUCT_COLUMNS} FROM products p JOIN stores s ON s.id = p.store_id \
             ORDER BY p.id LIMIT $1 OFFSET $2"
        ))
        .await?;
    let rows = client
        .query(&page, &[&window.limit, &window.offset])
        .await?;
    let items = rows
        .iter()
        .map(product_from_row)
        .collect::<Result<_, _>>()?;
    Ok(Listing { total, items })
}

/// One product, if it exists.
#[tracing::instrument(skip(pool))]
pub async fn find_product(pool: &DbPool, product_id: i64) -> Result<Option<Product>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "SELECT {PRODUCT_COLUMNS} FROM products p JOIN stores s ON s.id = p.store_id \
             WHERE p.id = $1"
        ))
        .await?;
    let row = client.query_opt(&statement, &[&product_id]).await?;
    row.as_ref().map(product_from_row).transpose()
}

/// Creates a product; an unknown store is [`super::Violation::UnknownStore`].
#[tracing::instrument(skip(pool, name, regular_price))]
pub async fn insert_product(
    pool: &DbPool,
    store_id: i64,
    name: &Name,
    regular_price: Money,
) -> Result<Product, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "WITH p AS (INSERT INTO products (store_id, name, regular_price) \
             VALUES ($1, $2, $3) RETURNING *) \
             SELECT {PRODUCT_COLUMNS} FROM p JOIN stores s ON s.id = p.store_id"
        ))
        .await?;
    let row = client
        .query_one(
            &statement,
            &[&store_id, &name.as_str(), &regular_price.amount()],
        )
        .await?;
    product_from_row(&row)
}

/// Applies `changes` to one product; `None` when it does not exist.
#[tracing::instrument(skip(pool, changes))]
pub async fn update_product(
    pool: &DbPool,
    product_id: i64,
    changes: &ProductChanges,
) -> Result<Option<Product>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(&format!(
            "WITH p AS (UPDATE products SET store_id = COALESCE($2, store_id), \
             name = COALESCE($3, name), regular_price = COALESCE($4, regular_price) \
             WHERE id = $1 RETURNING *) \
             SELECT {PRODUCT_COLUMNS} FROM p JOIN stores s ON s.id = p.store_id"
        ))
        .await?;
    let name = changes.name.as_ref().map(Name::as_str);
    let price = changes.regular_price.map(Money::amount);
    let row = client
        .query_opt(&statement, &[&product_id, &changes.store_id, &name, &price])
        .await?;
    row.as_ref().map(product_from_row).transpose()
}

/// Deletes a product and its promos; false when it did not exist.
#[tracing::instrument(skip(pool))]
pub async fn delete_product(pool: &DbPool, product_id: i64) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached("DELETE FROM products WHERE id = $1")
        .await?;
    Ok(client.execute(&statement, &[&product_id]).await? == 1)
}

fn product_from_row(row: &Row) -> Result<Product, DbError> {
    let regular_price = Money::from_decimal(row.get("regular_price"))
        .map_err(|error| DbError::Corrupt(format!("products.regular_price: {error}")))?;
    Ok(Product {
        id: row.get("id"),
        name: row.get("name"),
        regular_price,
        store: Store {
            id: row.get("store_id"),
            name: row.get("store_name"),
            latitude: row.get("latitude"),
            longitude: row.get("longitude"),
        },
    })
}
