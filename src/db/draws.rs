//! SQL for the draw: finishing a campaign (drawing its winners by the
//! verifiable rule of [`crate::domain::draw`]) and reading back what anyone
//! may check: the seed, the entries, their digest and the winners' positions.
//!
//! The candidates are the verified subscribers that were verified while the
//! campaign was open (`NOT missed_draw`), in id order: one pass over the
//! partial index `subscribers_draw_idx`, which carries each entry's hash, so
//! a million candidates are read and digested without touching the table.
//! A confirmation after the finish sets `missed_draw` (under the campaign's
//! lock, like the draw), so the published entries stay exactly what the draw
//! used.

use bytes::{BufMut, Bytes, BytesMut};
use deadpool_postgres::{GenericClient, Object};
use futures_util::{pin_mut, FutureExt, Stream, TryStreamExt};

use super::campaign_lifecycle::fresh_seed;
use super::campaigns::{find_campaign_with, stored_status};
use super::fence::{run_fenced, FencedWork, WriteFailure};
use super::{outbox, DbError, DbPool};
use crate::domain::draw::{draw_positions, DrawSeed, EntriesDigest};
use crate::domain::raffle::{admin_result_email, winner_email, Campaign, CampaignStatus};

const CANDIDATES: &str = "SELECT id, entry_hash FROM subscribers \
     WHERE campaign_id = $1 AND verified AND NOT missed_draw ORDER BY id";
/// Entries per chunk of a streamed entries file (65 bytes each): about 64 KiB.
const ENTRIES_PER_CHUNK: usize = 1_000;

/// What a call to finish a campaign came to.
#[derive(Debug, Clone, PartialEq)]
pub enum Finish {
    /// No such campaign.
    NotFound,
    /// A draft or a cancelled campaign: no draw.
    NotOpen(CampaignStatus),
    /// No verified subscriber: the campaign stays open.
    NoVerified,
    /// The campaign had no seed (opened before draws were published): one is
    /// committed (`seed_commitment` shows now) and the draw is left to a
    /// later call.
    SeedCommitted,
    /// The campaign is finished with its winners (`campaign.winners`);
    /// `drawn_now` is false when an earlier call drew them.
    Finished {
        campaign: Box<Campaign>,
        drawn_now: bool,
    },
}

/// Draws the winners among the verified subscribers with the campaign's
/// seed, closes the campaign and queues each winner's and the admin's emails,
/// in one transaction; a finished campaign answers its recorded winners. The
/// transaction is fenced ([`super::fence`]) and must finish within `timeout`.
#[tracing::instrument(skip(pool))]
pub async fn finish_campaign(
    pool: &DbPool,
    campaign_id: i64,
    timeout: std::time::Duration,
) -> Result<Finish, WriteFailure> {
    let work: FencedWork<'_, Finish> =
        Box::new(move |transaction| draw_in(transaction, campaign_id).boxed());
    run_fenced(pool, timeout, work).await
}

async fn draw_in(transaction: &Object, campaign_id: i64) -> Result<Finish, DbError> {
    let lock = transaction
        .prepare_cached(
            "SELECT status, draw_seed, winners_count FROM campaigns WHERE id = $1 FOR UPDATE",
        )
        .await?;
    let Some(locked) = transaction.query_opt(&lock, &[&campaign_id]).await? else {
        return Ok(Finish::NotFound);
    };
    let status = stored_status(locked.get("status"))?;
    match status {
        CampaignStatus::Open => {}
        CampaignStatus::Finished => return finished(transaction, campaign_id, false).await,
        other => return Ok(Finish::NotOpen(other)),
    }
    // A campaign opened before draws were published may have no seed yet: a
    // draw on a seed nobody saw committed proves nothing, so the seed is
    // committed now and the draw waits for a later call.
    let stored: Option<&[u8]> = locked.get("draw_seed");
    let Some(seed) = stored.and_then(DrawSeed::from_slice) else {
        commit_seed(transaction, campaign_id).await?;
        return Ok(Finish::SeedCommitted);
    };
    let (ids, digest) = read_candidates(transaction, campaign_id).await?;
    let (digest, count) = digest.finish();
    if count == 0 {
        return Ok(Finish::NoVerified);
    }
    let winners = usize::try_from(locked.get::<_, i32>("winners_count")).unwrap_or(1);
    let positions = draw_positions(&seed, &hex::encode(digest), count, winners);
    record_draw(transaction, campaign_id, &seed, &digest, &ids, &positions).await?;
    finished(transaction, campaign_id, true).await
}

/// Gives an unseeded open campaign its seed and commitment.
async fn commit_seed(client: &impl GenericClient, campaign_id: i64) -> Result<(), DbError> {
    let statement = client
        .prepare_cached("UPDATE campaigns SET draw_seed = $2, seed_commitment = $3 WHERE id = $1")
        .await?;
    let seed = fresh_seed()?;
    let commitment = seed.commitment();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 3] = [
        &campaign_id,
        &seed.as_bytes().as_slice(),
        &commitment.as_slice(),
    ];
    client.execute(&statement, &params).await?;
    Ok(())
}

/// Every candidate's id, and the digest of their entries, in one pass.
async fn read_candidates(
    client: &impl GenericClient,
    campaign_id: i64,
) -> Result<(Vec<i64>, EntriesDigest), DbError> {
    let statement = client.prepare_cached(CANDIDATES).await?;
    let rows = client.query_raw(&statement, [&campaign_id]).await?;
    pin_mut!(rows);
    let mut ids = Vec::new();
    let mut digest = EntriesDigest::new();
    while let Some(row) = rows.try_next().await? {
        ids.push(row.get::<_, i64>(0));
        digest.push(entry_of(row.get(1))?);
    }
    Ok((ids, digest))
}

fn entry_of(bytes: &[u8]) -> Result<&[u8; 32], DbError> {
    bytes
        .try_into()
        .map_err(|_| DbError::Corrupt(format!("an entry hash of {} bytes", bytes.len())))
}

/// Stores the winners (draw order, with their positions in the entries) and
/// what the draw used, and closes the campaign.
async fn record_draw(
    client: &impl GenericClient,
    campaign_id: i64,
    seed: &DrawSeed,
    digest: &[u8; 32],
    ids: &[i64],
    positions: &[u64],
) -> Result<(), DbError> {
    let winners = client
        .prepare_cached(
            "INSERT INTO campaign_winners (campaign_id, position, subscriber_id, entry_index) \
             SELECT $1, n - 1, w.subscriber_id, w.entry_index \
             FROM unnest($2::bigint[], $3::bigint[]) WITH ORDINALITY \
                  AS w(subscriber_id, entry_index, n)",
        )
        .await?;
    let indexes: Vec<i64> = positions.iter().map(|p| *p as i64).collect();
    let subscriber_ids: Vec<i64> = positions.iter().map(|p| ids[*p as usize]).collect();
    client
        .execute(&winners, &[&campaign_id, &subscriber_ids, &indexes])
        .await?;
    let close = client
        .prepare_cached(
            "UPDATE campaigns SET status = 'finished', finished_at = now(), draw_seed = $2, \
                    seed_commitment = $3, entries_digest = $4, entry_count = $5 WHERE id = $1",
        )
        .await?;
    let count = i64::try_from(ids.len()).unwrap_or(i64::MAX);
    let commitment = seed.commitment();
    let params: [&(dyn tokio_postgres::types::ToSql + Sync); 5] = [
        &campaign_id,
        &seed.as_bytes().as_slice(),
        &commitment.as_slice(),
        &digest.as_slice(),
        &count,
    ];
    client.execute(&close, &params).await?;
    Ok(())
}

/// The finished campaign; when `drawn_now`, its winners' and admin's emails
/// are queued in the same transaction.
async fn finished(
    client: &impl GenericClient,
    campaign_id: i64,
    drawn_now: bool,
) -> Result<Finish, DbError> {
    let campaign = find_campaign_with(client, campaign_id)
        .await?
        .ok_or_else(|| DbError::Corrupt(format!("campaign {campaign_id} vanished")))?;
    if campaign.winners.is_empty() {
        return Err(DbError::Corrupt(format!(
            "finished campaign {campaign_id} has no winner"
        )));
    }
    if drawn_now {
        let count = entry_count(client, campaign_id).await?;
        let name = campaign.name.as_str();
        let emails: Vec<&str> = campaign.winners.iter().map(|w| w.email.as_str()).collect();
        let mut mails: Vec<_> = emails
            .iter()
            .map(|email| winner_email(email, name))
            .collect();
        mails.push(admin_result_email(
            &campaign.admin_email,
            name,
            &emails,
            count,
        ));
        outbox::enqueue(client, campaign_id, &mails).await?;
    }
    Ok(Finish::Finished {
        campaign: Box::new(campaign),
        drawn_now,
    })
}

async fn entry_count(client: &impl GenericClient, campaign_id: i64) -> Result<i64, DbError> {
    let statement = client
        .prepare_cached("SELECT coalesce(entry_count, verified_count) FROM campaigns WHERE id = $1")
        .await?;
    Ok(client.query_one(&statement, &[&campaign_id]).await?.get(0))
}

/// A campaign's published draw, as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawRecord {
    pub status: CampaignStatus,
    pub seed_commitment: [u8; 32],
    /// After the finish only.
    pub outcome: Option<DrawOutcome>,
}

/// What a finished draw publishes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DrawOutcome {
    pub seed: [u8; 32],
    pub entries_digest: [u8; 32],
    pub entry_count: i64,
    /// The prizes: the draw picks `min(winners_count, entry_count)` winners.
    pub winners_count: i32,
    /// The winners' positions in the entries, in draw order.
    pub winners: Vec<i64>,
}

/// The draw of a campaign; `None` when it does not exist or has no seed (a
/// draft, or a campaign drawn before draws were published).
#[tracing::instrument(skip(pool))]
pub async fn find_draw(pool: &DbPool, campaign_id: i64) -> Result<Option<DrawRecord>, DbError> {
    let client = pool.get().await?;
    let statement = client
        .prepare_cached(
            "SELECT status, draw_seed, seed_commitment, entries_digest, entry_count, winners_count, \
                    (SELECT array_agg(entry_index ORDER BY position) FROM campaign_winners \
                     WHERE campaign_id = c.id) AS winners \
             FROM campaigns c WHERE id = $1 AND seed_commitment IS NOT NULL",
        )
        .await?;
    let Some(row) = client.query_opt(&statement, &[&campaign_id]).await? else {
        return Ok(None);
    };
    let status = stored_status(row.get("status"))?;
    let commitment = bytes32(row.get("seed_commitment"))?;
    let outcome = match (status, row.get::<_, Option<&[u8]>>("entries_digest")) {
        (CampaignStatus::Finished, Some(digest)) => Some(DrawOutcome {
            seed: bytes32(row.get("draw_seed"))?,
            entries_digest: bytes32(digest)?,
            entry_count: row.get("entry_count"),
            winners_count: row.get("winners_count"),
            winners: row
                .get::<_, Option<Vec<i64>>>("winners")
                .unwrap_or_default(),
        }),
        _ => None,
    };
    Ok(Some(DrawRecord {
        status,
        seed_commitment: commitment,
        outcome,
    }))
}

fn bytes32(bytes: &[u8]) -> Result<[u8; 32], DbError> {
    entry_of(bytes).copied()
}

/// The entries file of a finished draw, streamed from the database in chunks:
/// each entry's lowercase hex, joined with `"\n"`, no trailing newline.
///
/// A task of its own reads the rows and hands chunks over a channel of
/// [`CHUNKS_IN_FLIGHT`], so a slow reader holds back the database read rather
/// than piling chunks up in memory. A reader that goes away, or takes more
/// than [`SEND_TIMEOUT`] to make room for a chunk, ends the read: the
/// connection goes back to the pool (and a stalled reader's response ends with
/// an error). `hold` (a build slot) is dropped when the connection is.
pub fn stream_entries(
    pool: &DbPool,
    campaign_id: i64,
    hold: impl Send + 'static,
) -> impl Stream<Item = Result<Bytes, DbError>> + 'static {
    let (sender, receiver) = tokio::sync::mpsc::channel(CHUNKS_IN_FLIGHT);
    let pool = pool.clone();
    tokio::spawn(async move {
        let result = send_entries(&pool, campaign_id, &sender).await;
        drop(hold);
        if let Err(error) = result {
            // Never wait on a stalled reader for the error either.
            let _ = sender.try_send(Err(error));
        }
    });
    futures_util::stream::unfold(receiver, |mut receiver| async move {
        receiver.recv().await.map(|chunk| (chunk, receiver))
    })
}

/// Chunks waiting for a slow reader of the entries file.
const CHUNKS_IN_FLIGHT: usize = 2;
/// How long a reader may leave a chunk waiting before the read is given up.
pub const SEND_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(10);

async fn send_entries(
    pool: &DbPool,
    campaign_id: i64,
    sender: &tokio::sync::mpsc::Sender<Result<Bytes, DbError>>,
) -> Result<(), DbError> {
    let client = pool.get().await?;
    let statement = client.prepare_cached(CANDIDATES).await?;
    let rows = client.query_raw(&statement, [&campaign_id]).await?;
    pin_mut!(rows);
    let mut chunk = BytesMut::with_capacity(ENTRIES_PER_CHUNK * 65);
    let mut hex_entry = [0u8; 64];
    let mut first = true;
    while let Some(row) = rows.try_next().await? {
        if !first {
            chunk.put_u8(b'\n');
        }
        first = false;
        hex::encode_to_slice(entry_of(row.get(1))?, &mut hex_entry)
            .map_err(|error| DbError::Corrupt(error.to_string()))?;
        chunk.put_slice(&hex_entry);
        if chunk.len() >= ENTRIES_PER_CHUNK * 65 {
            let full =
                std::mem::replace(&mut chunk, BytesMut::with_capacity(ENTRIES_PER_CHUNK * 65));
            if !hand_over(sender, full.freeze()).await? {
                return Ok(()); // The reader went away.
            }
        }
    }
    if !chunk.is_empty() {
        hand_over(sender, chunk.freeze()).await?;
    }
    Ok(())
}

/// Sends one chunk: false when the reader went away, an error when it stalled.
async fn hand_over(
    sender: &tokio::sync::mpsc::Sender<Result<Bytes, DbError>>,
    chunk: Bytes,
) -> Result<bool, DbError> {
    match tokio::time::timeout(SEND_TIMEOUT, sender.send(Ok(chunk))).await {
        Ok(sent) => Ok(sent.is_ok()),
        Err(_) => Err(DbError::Unavailable(
            "the reader of an entries file stalled".into(),
        )),
    }
}
