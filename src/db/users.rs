//! SQL for `users` (accounts and their password hashes) and `auth_tokens`.

use tokio_postgres::Row;

use super::{DbError, DbPool};
use crate::domain::entities::AccountSummary;

/// An account with the hash its password is checked against.
#[derive(Debug, Clone)]
pub struct StoredLogin {
    pub account: AccountSummary,
    pub password_hash: String,
}

/// The account named `username` and its password hash.
#[tracing::instrument(skip(pool))]
pub async fn find_login(pool: &DbPool, username: &str) -> Result<Option<StoredLogin>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT id, username, is_admin, password_hash FROM users WHERE username = $1",
        )
        .await?;
    let row = client.query_opt(&statement, &[&username]).await?;
    Ok(row.map(|row| StoredLogin {
        account: account_from_row(&row),
        password_hash: row.get("password_hash"),
    }))
}

/// Stores a new token (by its hash) for `user_id`.
#[tracing::instrument(skip(pool, token_hash))]
pub async fn insert_token(pool: &DbPool, user_id: i64, token_hash: &[u8]) -> Result<(), DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached("INSERT INTO auth_tokens (token_hash, user_id) VALUES ($1, $2)")
        .await?;
    client.execute(&statement, &[&token_hash, &user_id]).await?;
    Ok(())
}

/// The account a token (given by its hash) belongs to.
#[tracing::instrument(skip_all)]
pub async fn find_token_account(
    pool: &DbPool,
    token_hash: &[u8],
) -> Result<Option<AccountSummary>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT u.id, u.username, u.is_admin FROM auth_tokens t \
             JOIN users u ON u.id = t.user_id WHERE t.token_hash = $1",
        )
        .await?;
    let row = client.query_opt(&statement, &[&token_hash]).await?;
    Ok(row.as_ref().map(account_from_row))
}

/// Creates the admin account, or makes the existing account of that name the
/// admin (with `password_hash` when one is given), and takes admin rights from
/// every other account, in one statement: there is one admin, the one
/// `ADMIN_USERNAME` names now. Returns the admin's id.
#[tracing::instrument(skip(pool, password_hash))]
pub async fn upsert_admin(
    pool: &DbPool,
    username: &str,
    password_hash: Option<&str>,
) -> Result<i64, DbError> {
    let client = pool.get().await?;
    // Both parts see the same snapshot; the UPDATE skips the admin's own row,
    // so no row is changed twice.
    let statement = client
        .prepare_cached(
            "WITH admin AS ( \
                 INSERT INTO users (username, password_hash, is_admin) VALUES ($1, $2, true) \
                 ON CONFLICT (username) DO UPDATE \
                 SET password_hash = COALESCE($3, users.password_hash), is_admin = true \
                 RETURNING id), \
             demoted AS ( \
                 UPDATE users SET is_admin = false \
                 WHERE is_admin AND id NOT IN (SELECT id FROM admin) RETURNING id) \
             SELECT id, (SELECT count(*) FROM demoted) AS demoted FROM admin",
        )
        .await?;
    let initial_hash = password_hash.unwrap_or("!");
    let row = client
        .query_one(&statement, &[&username, &initial_hash, &password_hash])
        .await?;
    let demoted: i64 = row.get("demoted");
    if demoted > 0 {
        tracing::warn!(demoted, "former admin accounts are no longer admins");
    }
    Ok(row.get("id"))
}

/// True when `username` belongs to a shopper (an account with a client profile).
#[tracing::instrument(skip(pool))]
pub async fn is_shopper(pool: &DbPool, username: &str) -> Result<bool, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT 1 FROM users u JOIN client_profiles p ON p.user_id = u.id \
             WHERE u.username = $1",
        )
        .await?;
    Ok(client.query_opt(&statement, &[&username]).await?.is_some())
}

fn account_from_row(row: &Row) -> AccountSummary {
    AccountSummary {
        id: row.get("id"),
        username: row.get("username"),
        is_admin: row.get("is_admin"),
    }
}
